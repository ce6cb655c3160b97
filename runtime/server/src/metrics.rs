//! `GET /metrics`: the server's figures in Prometheus' text format — builds by state (from the
//! database, at each scrape), webhook deliveries and how long they took to answer, and the
//! embedded agent's builds.
//!
//! What is counted in the process (webhook latency) lives in [`Metrics`]; a middleware
//! ([`track`]) times every request under `/webhook/`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::agent::Agent;
use crate::db::Db;
use crate::dispatch::Dispatch;

/// Upper bounds of the webhook latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// What the process counts itself.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Webhook answers by bucket (the last: over the largest bound).
    webhook_buckets: [AtomicU64; BUCKETS.len() + 1],
    webhook_count: AtomicU64,
    webhook_micros: AtomicU64,
}

impl Metrics {
    /// Counts one webhook answered after `seconds`.
    pub fn observe_webhook(&self, seconds: f64) {
        let bucket = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
        self.webhook_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.webhook_count.fetch_add(1, Ordering::Relaxed);
        self.webhook_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The text of a scrape: these counts, the builds by state and the agent's load.
    pub async fn render(&self, db: &Db, agent: Option<&Agent<Dispatch>>) -> String {
        let mut out = String::new();
        out.push_str("# HELP monkeyci_builds Builds on this server by state.\n# TYPE monkeyci_builds gauge\n");
        match db.count_builds_by_status().await {
            Ok(counts) => {
                for (status, count) in counts {
                    let _ = writeln!(out, "monkeyci_builds{{status=\"{status}\"}} {count}");
                }
            }
            Err(err) => tracing::warn!("metrics: cannot count builds: {}", monkeyci_protocol::error_chain(&err)),
        }
        if let Some(agent) = agent {
            let (running, capacity) = agent.load();
            out.push_str("# HELP monkeyci_agent_builds Builds an agent in this process runs now.\n");
            out.push_str("# TYPE monkeyci_agent_builds gauge\n");
            let _ = writeln!(out, "monkeyci_agent_builds{{agent=\"{}\"}} {running}", agent.name());
            out.push_str("# HELP monkeyci_agent_capacity Builds an agent in this process runs at once.\n");
            out.push_str("# TYPE monkeyci_agent_capacity gauge\n");
            let _ = writeln!(out, "monkeyci_agent_capacity{{agent=\"{}\"}} {capacity}", agent.name());
        }
        out.push_str("# HELP monkeyci_webhook_seconds Time to answer a webhook delivery.\n");
        out.push_str("# TYPE monkeyci_webhook_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.webhook_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "monkeyci_webhook_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.webhook_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "monkeyci_webhook_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.webhook_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "monkeyci_webhook_seconds_sum {sum}");
        let _ = writeln!(out, "monkeyci_webhook_seconds_count {count}");
        out
    }
}

/// Times requests under `/webhook/`.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let webhook = request.uri().path().starts_with("/webhook/");
    let started = Instant::now();
    let response = next.run(request).await;
    if webhook {
        metrics.observe_webhook(started.elapsed().as_secs_f64());
    }
    response
}

/// The `/metrics` handler's state: the counts and where the rest comes from.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The process's counts.
    pub metrics: Arc<Metrics>,
    /// The database.
    pub db: Db,
    /// The embedded agent.
    pub agent: Option<Agent<Dispatch>>,
}

/// `GET /metrics`.
pub async fn scrape(State(scrape): State<Scrape>) -> impl IntoResponse {
    let text = scrape.metrics.render(&scrape.db, scrape.agent.as_ref()).await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_counts_in_its_bucket_and_every_larger_one() {
        let metrics = Metrics::default();
        metrics.observe_webhook(0.003);
        metrics.observe_webhook(2.0);
        assert_eq!(metrics.webhook_buckets[2].load(Ordering::Relaxed), 1, "0.003 s is in the 5 ms bucket");
        assert_eq!(metrics.webhook_buckets[BUCKETS.len()].load(Ordering::Relaxed), 1, "2 s is over every bound");
        assert_eq!(metrics.webhook_count.load(Ordering::Relaxed), 2);
    }
}
