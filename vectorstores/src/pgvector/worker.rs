//! One PostgreSQL connection on a thread of its own. The `postgres` client drives a private
//! async runtime; keeping it off the caller's threads means the store works the same from a
//! CLI, a sync job or the server's blocking pool.

use std::sync::Mutex;
use std::sync::mpsc;

use postgres::Client;
use quarry_core::StoreError;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

pub struct Worker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Worker {
    /// Connects (on the worker thread) and keeps the connection there.
    pub fn connect(config: postgres::Config) -> Result<Self, StoreError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::channel();
        std::thread::Builder::new()
            .name("quarry-pgvector".into())
            .spawn(move || {
                let mut client = match config.connect(postgres::NoTls) {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                for job in inbox {
                    job(&mut client);
                }
            })
            .map_err(|e| StoreError::Storage(format!("starting the PostgreSQL thread: {e}")))?;
        connected
            .recv()
            .map_err(|_| StoreError::Storage("the PostgreSQL thread ended".into()))?
            .map_err(|e| StoreError::Storage(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self {
            jobs: Mutex::new(jobs),
        })
    }

    /// Runs `f` with the connection and waits for its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, result) = mpsc::channel();
        let job: Job = Box::new(move |client| {
            let _ = reply.send(f(client));
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| StoreError::Storage("the PostgreSQL connection is gone".into()))?;
        result
            .recv()
            .map_err(|_| StoreError::Storage("the PostgreSQL thread ended".into()))?
            .map_err(|e| StoreError::Storage(format!("PostgreSQL: {}", describe(&e))))
    }
}

/// The server's own message when there is one (the client's Display only says "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
