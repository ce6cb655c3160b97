//! The MonkeyCI server: repositories, a build queue, agents, the REST API and live events.
//!
//! `monkeyci server` is [`Server`]: one process with a database ([`db`]: SQLite in the data
//! dir, or PostgreSQL), the HTTP API ([`api`]), every build's stream of records ([`stream`],
//! kept in the database and followed live), an embedded [`agent`] that claims queued
//! builds and runs them with `monkeyci-build`, the same code as `monkeyci build run`, and the
//! [`meter`], which records what each ended build used ([`usage`]) and refuses builds of orgs
//! over their credit limit. Remote agents (`monkeyci agent`) run the same [`agent`] over HTTP
//! ([`remote_link`]); both reach the queue through the agent protocol ([`link`], served by
//! [`dispatch`]).
//!
//! This crate owns the service around builds: who may do what ([`auth`]), what is queued,
//! and what each build showed. It never runs a pipeline step itself (that is
//! `monkeyci-build`'s and `monkeyci-jobs`'), never parses a command line and never prints
//! for people: the `monkeyci` binary does.

#![doc(test(attr(deny(warnings))))]

pub mod agent;
pub mod api;
pub mod approvals;
pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod ids;
pub mod link;
pub mod meter;
pub mod metrics;
pub mod model;
pub mod params;
pub mod remote_link;
pub mod secrets;
pub mod stream;
pub mod usage;

use std::sync::Arc;

use monkeyci_jobs::EngineChoice;

use crate::agent::{Agent, AgentConfig};
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::dispatch::Dispatch;
use crate::stream::Streams;

/// The name the embedded agent's builds carry.
pub const EMBEDDED_AGENT: &str = "embedded";

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data dir cannot be made.
    #[error("cannot create the data directory {}", dir.display())]
    DataDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The database cannot be opened or migrated.
    #[error("cannot open the database")]
    Db(#[from] DbError),
    /// The server key cannot be read or made.
    #[error("cannot get the server key")]
    ServerKey(#[from] secrets::SecretsError),
    /// The server key does not open the params stored in the database.
    #[error("the server key does not open the params stored in the database")]
    WrongServerKey(#[source] DbError),
    /// Builds are to run sandboxed, and the sandbox cannot be made.
    #[error("cannot sandbox builds (or start with --no-sandbox, for trusted repositories only)")]
    Sandbox(#[from] monkeyci_build::sandbox::Error),
    /// The host shell engine was chosen (or is all there is) for sandboxed builds.
    #[error(
        "container jobs on the shell engine would run on this machine outside the sandbox: install podman or \
         docker (or start with --no-sandbox, for trusted repositories only)"
    )]
    UnsandboxedEngine,
    /// The engine named in the configuration is not one we know.
    #[error("engine: {0}")]
    Engine(String),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// A server, ready to serve.
#[derive(Debug)]
pub struct Server {
    config: Config,
    engine: EngineChoice,
    db: Db,
    listener: tokio::net::TcpListener,
    /// The admin token made on the first start of an empty data dir: to be shown once.
    pub first_admin_token: Option<String>,
}

impl Server {
    /// Opens the data dir and the database (applying migrations) and binds the address.
    pub async fn start(config: Config) -> Result<Server, Error> {
        let engine = config.engine.parse::<EngineChoice>().map_err(Error::Engine)?.resolve();
        if config.sandbox && config.agent_capacity > 0 {
            monkeyci_build::sandbox::Sandbox::available()?;
            if engine == EngineChoice::Shell {
                return Err(Error::UnsandboxedEngine);
            }
        }
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| Error::DataDir { dir: config.data_dir.clone(), source })?;
        let key = match &config.server_key {
            Some(key) => key.clone(),
            None => secrets::Key::load_or_create(&config.key_file())?,
        };
        let db = Db::open(&config.database_url()).await?.with_server_key(key);
        db.check_server_key().await.map_err(Error::WrongServerKey)?;
        let first_admin_token = if db.has_admin_token().await? {
            None
        } else {
            Some(auth::create_token(&db, true, None, "made on the first start").await?)
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen { addr: config.listen, source })?;
        Ok(Server { config, engine, db, listener, first_admin_token })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` completes, then stops accepting, lets running requests finish and
    /// hands the embedded agent's running builds back to the queue.
    pub async fn serve(self, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let engine = self.engine;
        let streams = Streams::default();
        // Builds the embedded agent ran when the server last stopped without handing them
        // back (killed) start again.
        self.db.requeue_agent_builds(EMBEDDED_AGENT).await?;
        // Remote agents' builds go on: their silence counts from now.
        self.db.forgive_silence().await?;
        let agent = (self.config.agent_capacity > 0).then(|| {
            Agent::new(
                AgentConfig {
                    name: EMBEDDED_AGENT.to_owned(),
                    capacity: self.config.agent_capacity,
                    work_dir: self.config.data_dir.join("agent"),
                    cache_dir: self.config.cache_dir.clone().unwrap_or_else(|| self.config.data_dir.join("cache")),
                    sdk_path: self.config.sdk_path.clone(),
                    engine,
                    sandbox: self.config.sandbox,
                    private: vec![self.config.data_dir.clone()],
                },
                Dispatch::new(self.db.clone(), streams.clone()),
            )
        });
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let streams_for_reaper = streams.clone();
        let state =
            api::AppState { db: self.db.clone(), streams, agent: agent.clone(), shutdown: Arc::clone(&shutdown) };
        let agent_task = agent.map(|agent| tokio::spawn(agent.run()));
        let meter = tokio::spawn(meter::run(self.db.clone(), streams_for_reaper.clone()));
        let reaper = tokio::spawn(reap_lost_builds(self.db.clone(), streams_for_reaper, self.config.agent_timeout));
        let addr = self.listener.local_addr().map_err(|source| Error::Listen { addr: self.config.listen, source })?;
        let counts = Arc::new(metrics::Metrics::default());
        let scrape = metrics::Scrape { metrics: Arc::clone(&counts), db: self.db.clone(), agent: state.agent.clone() };
        let app = api::router(state)
            .merge(axum::Router::new().route("/metrics", axum::routing::get(metrics::scrape)).with_state(scrape))
            .layer(axum::middleware::from_fn_with_state(counts, metrics::track));
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                stop.await;
                // Long polls and event streams end, so the requests they hold finish.
                shutdown.notify_waiters();
            })
            .await;
        reaper.abort();
        meter.abort();
        if let Some(task) = agent_task {
            task.abort();
            let _ = task.await;
        }
        self.db.requeue_agent_builds(EMBEDDED_AGENT).await?;
        self.db.close().await;
        served.map_err(|source| Error::Listen { addr, source })
    }
}

/// Every few seconds (a quarter of `timeout`, at most 5 s), ends the builds of agents silent
/// for `timeout`, with an end record so whoever follows them sees it, and queues again those
/// whose repository retries lost builds (the lost build's stream names its retry).
async fn reap_lost_builds(db: Db, streams: Streams, timeout: std::time::Duration) {
    let period = (timeout / 4).clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(5));
    let mut every = tokio::time::interval(period);
    let silence_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    loop {
        every.tick().await;
        match db.reap_and_retry(silence_ms).await {
            Ok(lost) => {
                for (id, retry) in lost {
                    tracing::warn!("build {id}: its agent stopped answering");
                    if let Ok(mut writer) = stream::Writer::open(&db, &streams, &id).await {
                        if let Some(retry) = retry {
                            let line =
                                format!("its agent was lost: queued again as build {} (#{})", retry.id, retry.number);
                            let line = model::Line { stream: monkeyci_protocol::OutputStream::Stderr, line };
                            let _ = writer.write(vec![model::RecordBody::Line(line)]).await;
                        }
                        let _ = writer.write_end(model::Status::Error, Some(db::AGENT_LOST.to_owned())).await;
                    }
                }
            }
            Err(err) => tracing::warn!("cannot look for lost agents: {}", monkeyci_protocol::error_chain(&err)),
        }
    }
}
