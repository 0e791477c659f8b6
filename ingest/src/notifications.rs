//! S3 event notifications delivered to an SQS queue: long-polled, turned into the keys they
//! name, and deleted once the keys are handed to a sync. A message whose sync is lost to a
//! crash comes back (SQS redelivers what was not deleted), which is harmless.

use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use serde_json::Value;

use crate::sources::SourceError;

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    runtime: tokio::runtime::Runtime,
}

/// One received message: the objects it names, and the handle to delete it with.
pub struct Notification {
    pub receipt_handle: String,
    /// (bucket, key) of each object created or removed.
    pub objects: Vec<(String, String)>,
}

impl SqsQueue {
    pub fn connect(
        url: &str,
        endpoint_url: Option<&str>,
        region: Option<&str>,
    ) -> Result<Self, SourceError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SourceError::Unavailable(format!("cannot start the SQS client: {e}")))?;
        let shared = runtime.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(region) = region {
                loader = loader.region(Region::new(region.to_owned()));
            }
            loader.load().await
        });
        let mut builder = aws_sdk_sqs::config::Builder::from(&shared);
        if shared.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = endpoint_url {
            builder = builder.endpoint_url(endpoint);
        }
        Ok(Self {
            client: aws_sdk_sqs::Client::from_conf(builder.build()),
            url: url.to_owned(),
            runtime,
        })
    }

    /// Waits up to `wait_seconds` for messages.
    pub fn receive(&self, wait_seconds: i32) -> Result<Vec<Notification>, SourceError> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(wait_seconds)
                    .send(),
            )
            .map_err(|e| {
                SourceError::Unavailable(format!(
                    "SQS ReceiveMessage {}: {}",
                    self.url,
                    DisplayErrorContext(&e)
                ))
            })?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Notification {
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    objects: objects_of(m.body().unwrap_or("")),
                })
            })
            .collect())
    }

    pub fn delete(&self, receipt_handle: &str) -> Result<(), SourceError> {
        self.runtime
            .block_on(
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(receipt_handle)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| {
                SourceError::Unavailable(format!("SQS DeleteMessage: {}", DisplayErrorContext(&e)))
            })
    }
}

/// The objects an S3 event notification names (keys URL-decoded, as S3 encodes them). Test
/// events and anything else yield nothing.
pub fn objects_of(body: &str) -> Vec<(String, String)> {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    // Notifications that went through SNS first carry the S3 event in "Message".
    if let Some(inner) = json.get("Message").and_then(Value::as_str) {
        return objects_of(inner);
    }
    json.get("Records")
        .and_then(Value::as_array)
        .map(|records| {
            records
                .iter()
                .filter(|r| {
                    r.get("eventName").and_then(Value::as_str).is_some_and(|n| {
                        n.starts_with("ObjectCreated") || n.starts_with("ObjectRemoved")
                    })
                })
                .filter_map(|r| {
                    let s3 = r.get("s3")?;
                    let bucket = s3.get("bucket")?.get("name")?.as_str()?;
                    let key = s3.get("object")?.get("key")?.as_str()?;
                    Some((bucket.to_owned(), url_decode(key)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// S3 event keys are form-encoded: `+` for space, `%XX` for other bytes.
fn url_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && u8::from_str_radix(&key[i + 1..i + 3], 16).is_ok() => {
                out.push(u8::from_str_radix(&key[i + 1..i + 3], 16).expect("checked"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_s3_notifications_and_skips_the_rest() {
        let body = r#"{"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "docs"}, "object": {"key": "a/my+file%281%29.txt"}}},
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "docs"}, "object": {"key": "b.txt"}}},
            {"eventName": "ObjectRestore:Post", "s3": {"bucket": {"name": "docs"}, "object": {"key": "c.txt"}}}
        ]}"#;
        assert_eq!(
            objects_of(body),
            [
                ("docs".into(), "a/my file(1).txt".into()),
                ("docs".into(), "b.txt".into())
            ]
        );
        assert!(objects_of(r#"{"Service": "Amazon S3", "Event": "s3:TestEvent"}"#).is_empty());
        assert!(objects_of("not json").is_empty());
        let via_sns = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
        assert_eq!(objects_of(&via_sns).len(), 2);
    }
}
