//! Fusing a semantic and a lexical ranking into one (HYBRID search).
//!
//! Both fusions return scores in [0, 1], higher is better, so HYBRID scores read alike
//! whichever is chosen. The default is a convex combination of per-query min-max normalised
//! scores, measured on SciFact's train split against reciprocal rank fusion (see the
//! README's retrieval-quality table and `quarry eval`): scores keep how much better the
//! first passage is than the tenth, which ranks alone throw away.

/// One ranked list: chunk ids with their scores, best first.
pub type Ranking = [(String, f32)];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: Σ 1/(k + rank) over the lists a passage is in (rank from 1),
    /// divided by its maximum 2/(k + 1).
    Rrf { k: f32 },
    /// `semantic_weight`·s + (1 − `semantic_weight`)·l, where s and l are the passage's
    /// cosine and BM25 scores min-max normalised over that list's candidates (0 when it is
    /// not among them).
    Convex { semantic_weight: f32 },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Convex {
            semantic_weight: 0.5,
        }
    }
}

/// The fused ranking of every passage in either list, best first; ties keep the semantic
/// list's order.
pub fn fuse(semantic: &Ranking, lexical: &Ranking, fusion: Fusion) -> Vec<(String, f32)> {
    let mut fused: Vec<(String, f32)> = Vec::with_capacity(semantic.len() + lexical.len());
    let mut add = |id: &str, score: f32| match fused.iter_mut().find(|(f, _)| f == id) {
        Some((_, s)) => *s += score,
        None => fused.push((id.to_owned(), score)),
    };
    match fusion {
        Fusion::Rrf { k } => {
            let max = 2.0 / (k + 1.0);
            for list in [semantic, lexical] {
                for (rank, (id, _)) in list.iter().enumerate() {
                    add(id, 1.0 / (k + rank as f32 + 1.0) / max);
                }
            }
        }
        Fusion::Convex { semantic_weight } => {
            for (list, weight) in [
                (semantic, semantic_weight),
                (lexical, 1.0 - semantic_weight),
            ] {
                for (id, score) in min_max(list) {
                    add(id, weight * score);
                }
            }
        }
    }
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
}

/// Scores rescaled to [0, 1] over the list (all 1 when they are equal).
fn min_max(list: &Ranking) -> impl Iterator<Item = (&str, f32)> {
    let max = list
        .iter()
        .map(|(_, s)| *s)
        .fold(f32::NEG_INFINITY, f32::max);
    let min = list.iter().map(|(_, s)| *s).fold(f32::INFINITY, f32::min);
    let range = max - min;
    list.iter().map(move |(id, s)| {
        let normalised = if range > 0.0 { (s - min) / range } else { 1.0 };
        (id.as_str(), normalised)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(items: &[(&str, f32)]) -> Vec<(String, f32)> {
        items.iter().map(|(id, s)| ((*id).to_owned(), *s)).collect()
    }

    #[test]
    fn rrf_matches_a_hand_computed_example() {
        let semantic = ranking(&[("a", 0.9), ("b", 0.8)]);
        let lexical = ranking(&[("b", 12.0), ("c", 3.0)]);
        let fused = fuse(&semantic, &lexical, Fusion::Rrf { k: 60.0 });
        let max = 2.0 / 61.0;
        let expect = [
            ("b", (1.0 / 62.0 + 1.0 / 61.0) / max),
            ("a", (1.0 / 61.0) / max),
            ("c", (1.0 / 62.0) / max),
        ];
        assert_eq!(fused.len(), 3);
        for ((id, score), (want_id, want)) in fused.iter().zip(expect) {
            assert_eq!(id, want_id);
            assert!((score - want).abs() < 1e-6, "{id}: {score} vs {want}");
        }
    }

    #[test]
    fn convex_combination_matches_a_hand_computed_example() {
        let semantic = ranking(&[("a", 0.9), ("b", 0.7), ("c", 0.5)]);
        let lexical = ranking(&[("c", 20.0), ("d", 10.0), ("a", 5.0)]);
        let fused = fuse(
            &semantic,
            &lexical,
            Fusion::Convex {
                semantic_weight: 0.6,
            },
        );
        // a: 0.6·1 + 0.4·0 = 0.6; b: 0.6·0.5 = 0.3; c: 0.6·0 + 0.4·1 = 0.4; d: 0.4·(1/3).
        let expect = [("a", 0.6), ("c", 0.4), ("b", 0.3), ("d", 0.4 / 3.0)];
        for ((id, score), (want_id, want)) in fused.iter().zip(expect) {
            assert_eq!(id, want_id);
            assert!((score - want).abs() < 1e-6, "{id}: {score} vs {want}");
        }
    }

    #[test]
    fn one_empty_list_leaves_the_other_in_order() {
        let semantic = ranking(&[("a", 0.9), ("b", 0.2)]);
        for fusion in [Fusion::Rrf { k: 60.0 }, Fusion::default()] {
            let ids: Vec<String> = fuse(&semantic, &[], fusion)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            assert_eq!(ids, ["a", "b"]);
        }
    }
}
