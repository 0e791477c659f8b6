//! Connections: accepted up to a cap (one more is answered 429 and closed at once), headers
//! read within a deadline, TLS when configured (the certificate read again on SIGHUP), and
//! a graceful end: on shutdown no new connection is taken, open ones finish what they are
//! doing (within a grace period) and are closed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long open connections may take to finish once shutdown starts.
const GRACE: Duration = Duration::from_secs(10);

pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// A certificate and key read from PEM files, replaced in place by [`Tls::reload`].
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub fn load(cert: PathBuf, key: PathBuf) -> anyhow::Result<Arc<Self>> {
        let config = server_config(&cert, &key)?;
        Ok(Arc::new(Self {
            cert,
            key,
            current: RwLock::new(config),
        }))
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) {
        match server_config(&self.cert, &self.key) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
                tracing::info!(cert = %self.cert.display(), "reloaded the TLS certificate");
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not reload the TLS certificate; keeping the one in use")
            }
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Reloads on every SIGHUP, for as long as the server runs.
    pub fn reload_on_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = signal(SignalKind::hangup()).context("install the SIGHUP handler")?;
            let tls = self.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tls.reload();
                }
            });
        }
        Ok(())
    }
}

fn server_config(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{}: no PEM private key", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or similar: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: too many open connections");
            tokio::spawn(refuse(stream, tls.is_some()));
            continue;
        };
        let app = app.clone();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        let stop_rx = stop_rx.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match acceptor {
                None => connection(stream, app, header_timeout, stop_rx).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            connection(tls_stream, app, header_timeout, stop_rx).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} s after shutdown began; closing them",
            GRACE.as_secs()
        );
    }
}

async fn connection<S>(
    stream: S,
    app: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let stopping = async move {
        // (the guard `wait_for` returns is not Send; only whether it came matters)
        let _ = stop.wait_for(|s| *s).await.is_ok();
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopping => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn).await;
        }
    }
}

/// Past the connection cap: a 429 in Bedrock's form (plain HTTP only), then close.
async fn refuse(mut stream: TcpStream, tls: bool) {
    if !tls {
        let body = r#"{"message":"too many open connections; retry later"}"#;
        let response = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-amzn-ErrorType: ThrottlingException\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            stream.write_all(response.as_bytes()),
        )
        .await;
    }
    let _ = stream.shutdown().await;
}
