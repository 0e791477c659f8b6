//! Where job events are delivered: a webhook (POST, HMAC-SHA256 signed) or Amazon
//! EventBridge's `PutEvents`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use quarry_core::config::EventSinkConfig;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One destination. `deliver` is called from the sink's own thread, one event at a time.
pub trait Sink: Send + Sync {
    /// A stable name (for the outbox folder and logs), from what the sink is.
    fn name(&self) -> String;
    fn deliver(&self, event: &Value) -> Result<(), String>;
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}

pub fn build(config: &EventSinkConfig) -> anyhow::Result<Box<dyn Sink>> {
    Ok(match config {
        EventSinkConfig::Webhook {
            url, secret_env, ..
        } => {
            let secret = match secret_env {
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("server.event_sinks: the webhook's secret_env {var} is not set")
                })?),
                None => None,
            };
            Box::new(Webhook {
                url: url.clone(),
                secret,
                agent: ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_connect(Some(Duration::from_secs(10)))
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into(),
            })
        }
        EventSinkConfig::Eventbridge {
            event_bus,
            endpoint_url,
            region,
            ..
        } => Box::new(EventBridge::new(
            event_bus.clone(),
            endpoint_url.clone(),
            region.clone(),
        )?),
    })
}

struct Webhook {
    url: String,
    secret: Option<String>,
    agent: ureq::Agent,
}

/// `sha256=<hex>` of the body under the secret, as the `x-quarry-signature` header carries it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Sink for Webhook {
    fn name(&self) -> String {
        format!("webhook-{}", short_hash(&self.url))
    }

    fn deliver(&self, event: &Value) -> Result<(), String> {
        let body = event.to_string();
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("quarry/", env!("CARGO_PKG_VERSION")))
            .header(
                "x-quarry-event-id",
                event["id"].as_str().unwrap_or_default(),
            )
            .header(
                "x-quarry-event-type",
                event["type"].as_str().unwrap_or_default(),
            );
        if let Some(secret) = &self.secret {
            request = request.header("x-quarry-signature", &signature(secret, body.as_bytes()));
        }
        let response = request
            .send(body.as_bytes())
            .map_err(|e| format!("POST {}: {e}", self.url))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: HTTP {status}", self.url))
        }
    }
}

struct EventBridge {
    bus: String,
    client: aws_sdk_eventbridge::Client,
    runtime: tokio::runtime::Runtime,
    endpoint: String,
}

impl EventBridge {
    /// Built on a thread of its own: the server calls this from inside its async runtime,
    /// where another runtime may not block.
    fn new(bus: String, endpoint: Option<String>, region: Option<String>) -> anyhow::Result<Self> {
        std::thread::spawn(move || Self::build(bus, endpoint, region))
            .join()
            .map_err(|_| anyhow::anyhow!("building the EventBridge client panicked"))?
    }

    fn build(
        bus: String,
        endpoint: Option<String>,
        region: Option<String>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = runtime.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(region) = &region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            if let Some(endpoint) = &endpoint {
                loader = loader.endpoint_url(endpoint);
            }
            aws_sdk_eventbridge::Client::new(&loader.load().await)
        });
        Ok(Self {
            endpoint: endpoint.unwrap_or_else(|| "AWS".into()),
            bus,
            client,
            runtime,
        })
    }
}

impl Sink for EventBridge {
    fn name(&self) -> String {
        format!(
            "eventbridge-{}",
            short_hash(&format!("{}|{}", self.endpoint, self.bus))
        )
    }

    fn deliver(&self, event: &Value) -> Result<(), String> {
        let detail_type = match event["type"].as_str() {
            Some(super::DOCUMENT_FAILED) => "Ingestion Job Document Failed",
            Some(super::REGRESSION) => "Ingestion Job Regression Scores",
            _ => "Ingestion Job State Change",
        };
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source("quarry")
            .detail_type(detail_type)
            .detail(event.to_string())
            .event_bus_name(&self.bus)
            .resources(format!(
                "quarry:ingestion-job/{}",
                event["ingestionJobId"].as_str().unwrap_or_default()
            ))
            .build();
        let out = self
            .runtime
            .block_on(self.client.put_events().entries(entry).send())
            .map_err(|e| {
                format!(
                    "EventBridge PutEvents: {}",
                    aws_sdk_eventbridge::error::DisplayErrorContext(e)
                )
            })?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(format!("EventBridge PutEvents refused the event: {why}"));
        }
        Ok(())
    }
}
