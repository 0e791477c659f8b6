//! What the embedder and the cross-encoder share before a forward pass: refusing token ids
//! the model has no row for, and packing inputs into batches by length.

use quarry_core::EmbedError;

/// An error naming the first token id at or past `vocab`, if any.
pub(crate) fn check_vocabulary<'a>(
    sequences: impl IntoIterator<Item = &'a Vec<u32>>,
    vocab: usize,
) -> Result<(), EmbedError> {
    let vocab = vocab as u32;
    match sequences.into_iter().flatten().find(|&&id| id >= vocab) {
        Some(bad) => Err(EmbedError::Model(format!(
            "token id {bad} is outside the model's vocabulary of {vocab}"
        ))),
        None => Ok(()),
    }
}

/// The inputs' indices, longest first, cut into batches of at most `max_items` inputs and
/// `max_tokens` tokens (an input longer than that is a batch of its own).
pub(crate) fn by_length(lengths: &[usize], max_items: usize, max_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < order.len()
            && end - start < max_items
            && (end == start || tokens + lengths[order[end]] <= max_tokens)
        {
            tokens += lengths[order[end]];
            end += 1;
        }
        batches.push(order[start..end].to_vec());
        start = end;
    }
    batches
}
