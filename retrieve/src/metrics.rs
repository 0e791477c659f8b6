//! Ranking metrics for evaluation (BEIR's definitions): nDCG@k with graded relevance,
//! recall@k and MRR@k, from a ranked list of document ids and the judged relevant ones.

use std::collections::HashMap;

/// nDCG@k: DCG of the ranking over the ideal DCG, with gain = relevance and a log2(rank+1)
/// discount.
pub fn ndcg_at(k: usize, ranked: &[String], relevant: &HashMap<String, u32>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| f64::from(*relevant.get(id).unwrap_or(&0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = relevant.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &r)| f64::from(r) / (i as f64 + 2.0).log2())
        .sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// The share of relevant documents found in the first k.
pub fn recall_at(k: usize, ranked: &[String], relevant: &HashMap<String, u32>) -> f64 {
    let wanted = relevant.values().filter(|&&r| r > 0).count();
    if wanted == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| relevant.get(*id).is_some_and(|&r| r > 0))
        .count();
    found as f64 / wanted as f64
}

/// 1 / rank of the first relevant document within the first k, else 0.
pub fn mrr_at(k: usize, ranked: &[String], relevant: &HashMap<String, u32>) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|id| relevant.get(id).is_some_and(|&r| r > 0))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn match_a_hand_computed_example() {
        // Relevant: a (grade 2), b (grade 1). Ranking: x, a, y, b.
        let relevant: HashMap<String, u32> = [("a".to_string(), 2), ("b".to_string(), 1)].into();
        let ranked = ids(&["x", "a", "y", "b"]);
        // DCG = 2/log2(3) + 1/log2(5) = 1.261860 + 0.430677 = 1.692537
        // IDCG = 2/log2(2) + 1/log2(3) = 2 + 0.630930 = 2.630930
        let ndcg = ndcg_at(10, &ranked, &relevant);
        assert!((ndcg - 1.692537 / 2.630930).abs() < 1e-6, "{ndcg}");
        assert!((ndcg_at(2, &ranked, &relevant) - 1.261860 / 2.630930).abs() < 1e-6);
        assert_eq!(recall_at(3, &ranked, &relevant), 0.5);
        assert_eq!(recall_at(4, &ranked, &relevant), 1.0);
        assert_eq!(mrr_at(10, &ranked, &relevant), 0.5);
        assert_eq!(mrr_at(1, &ranked, &relevant), 0.0);
        assert_eq!(ndcg_at(10, &ids(&["a", "b"]), &relevant), 1.0);
        assert_eq!(ndcg_at(10, &ranked, &HashMap::new()), 0.0);
    }
}
