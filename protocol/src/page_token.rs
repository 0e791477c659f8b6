//! `nextToken`s of list and Retrieve responses: `offset-N`, where N is where the next page
//! starts. A token is checked as a number this server could have issued, never trusted.

/// The token of a page starting at `offset`.
pub fn offset_token(offset: usize) -> String {
    format!("offset-{offset}")
}

/// Where a page starts, if `token` is `offset-N` with N a plain decimal no greater than
/// `max`. Anything else (signs, spaces, huge numbers, other words) is `None`.
pub fn parse_offset_token(token: &str, max: usize) -> Option<usize> {
    let digits = token.strip_prefix("offset-")?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok().filter(|&n| n <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_odd_ones_are_refused() {
        assert_eq!(parse_offset_token(&offset_token(7), 10), Some(7));
        assert_eq!(parse_offset_token("offset-0", 0), Some(0));
        for bad in [
            "offset-18446744073709551615",
            "offset-99999999999999999999999",
            "offset-11",
            "offset--1",
            "offset-+1",
            "offset- 1",
            "offset-",
            "offset-1a",
            "nonsense",
            "",
        ] {
            assert_eq!(parse_offset_token(bad, 10), None, "{bad}");
        }
    }
}
