//! A PostgreSQL connection on a thread of its own. The `postgres` client drives a Tokio
//! runtime of its own, which may not start inside another's (an async handler, or a
//! `spawn_blocking` thread of the server's runtime); a [`PgConnection`] runs each call on
//! its thread and waits for the answer, so it can be used from anywhere that may block.
//! A connection the server closed is opened again before the next call.

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

use postgres::{Client, NoTls};

pub use postgres::Config as PgConfig;

use crate::StateError;

type Call = Box<dyn FnOnce(&mut Option<Client>) + Send>;

pub struct PgConnection {
    calls: Mutex<Sender<Call>>,
}

impl PgConnection {
    /// Connects (on the new thread) and reports whether that worked.
    pub fn connect(url: &str) -> Result<Self, StateError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| StateError::Database(format!("{url}: {e}")))?;
        Self::connect_with(config)
    }

    /// Like [`PgConnection::connect`], with settings made in code (a password from the
    /// environment, say).
    pub fn connect_with(config: postgres::Config) -> Result<Self, StateError> {
        let (calls, incoming) = channel::<Call>();
        let (ready, connected) = channel();
        let url = config;
        std::thread::Builder::new()
            .name("quarry-pg".into())
            .spawn(move || {
                let mut client = match url.connect(NoTls) {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        Some(c)
                    }
                    Err(e) => {
                        let _ = ready.send(Err(StateError::from(e)));
                        return;
                    }
                };
                for call in incoming {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = url.connect(NoTls).ok();
                    }
                    call(&mut client);
                }
            })
            .map_err(|e| StateError::Database(e.to_string()))?;
        connected
            .recv()
            .map_err(|_| StateError::Database("the connection thread stopped".into()))??;
        Ok(Self {
            calls: Mutex::new(calls),
        })
    }

    /// Runs `f` with the connection, on its thread.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let (answer, answered) = channel();
        let call: Call = Box::new(move |client| {
            let out = match client {
                Some(c) => f(c),
                None => Err(StateError::Database(
                    "cannot reach the cluster's database".into(),
                )),
            };
            let _ = answer.send(out);
        });
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(call)
            .map_err(|_| StateError::Database("the connection thread stopped".into()))?;
        answered
            .recv()
            .map_err(|_| StateError::Database("the connection thread stopped".into()))?
    }
}
