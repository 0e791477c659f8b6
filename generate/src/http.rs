//! What the HTTP model backends (`openai`, `rerank`) share: a client with their timeouts, a
//! server's `Retry-After`, and the wait before another attempt.

use std::time::Duration;

/// A client that hands every status back (errors are the caller's to classify), gives up
/// connecting after 10 s and on the whole request after `timeout`.
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// The wait a response's `Retry-After` asks for, in seconds' form.
pub(crate) fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Waits before attempt `attempt + 1`: what the server asked, or an exponential backoff from
/// 250 ms, at most 10 s.
pub(crate) fn pause(attempt: u32, asked: Option<Duration>) {
    let backoff = Duration::from_millis(250 << attempt.min(5));
    std::thread::sleep(asked.unwrap_or(backoff).min(Duration::from_secs(10)));
}
