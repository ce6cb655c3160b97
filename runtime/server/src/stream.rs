//! A build's stream of records on the server: kept in the database first, then handed to
//! whoever follows the build live (the in-process bus). A follower reads the database up to
//! where it joined and the bus after, so nothing is lost or repeated, across reconnects too
//! (records are numbered; SSE's `Last-Event-ID` says where a follower was). Whoever needs
//! every build's end (the meter) hears of each build whose end record was kept
//! ([`Streams::subscribe_ends`]).
//!
//! The writer masks every record with the build's secret values ([`Masker`]: the values and
//! their base64 and URL forms become `***`) before it is kept or sent, whoever produced it (the
//! pipeline, a container job, the agent), and so does the error a build ends with.

use std::collections::HashMap;
use std::sync::Arc;

use monkeyci_protocol::Masker;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::db::{Db, DbError};
use crate::model::{BuildEnd, Line, Record, RecordBody, Status};

/// How many records a live follower may fall behind before it reads the database instead.
const LIVE_CAPACITY: usize = 1024;

/// How many build ends a listener may fall behind before it is told it lagged.
const ENDS_CAPACITY: usize = 256;

/// A record as live followers get it: encoded once (the SSE `event` and `data`), however
/// many follow.
#[derive(Debug)]
pub struct LiveRecord {
    /// The record.
    pub record: Record,
    /// Its kind, the SSE `event` name.
    pub kind: &'static str,
    /// Its data as JSON, the SSE `data`.
    pub data: String,
}

/// Every build's live stream, in this process.
#[derive(Debug, Clone)]
pub struct Streams {
    live: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<LiveRecord>>>>>,
    ends: broadcast::Sender<String>,
}

impl Default for Streams {
    fn default() -> Streams {
        Streams { live: Arc::default(), ends: broadcast::channel(ENDS_CAPACITY).0 }
    }
}

impl Streams {
    /// Hears the id of every build whose end record is kept from now on. A listener that
    /// falls behind gets `Lagged` and must look in the database for what it missed.
    pub fn subscribe_ends(&self) -> broadcast::Receiver<String> {
        self.ends.subscribe()
    }

    /// Follows `build_id`'s records appended from now on.
    pub fn subscribe(&self, build_id: &str) -> broadcast::Receiver<Arc<LiveRecord>> {
        self.live.lock().entry(build_id.to_owned()).or_insert_with(|| broadcast::channel(LIVE_CAPACITY).0).subscribe()
    }

    /// Hands `records`, just stored, to the build's live followers (and its end to whoever
    /// listens for ends).
    pub(crate) fn publish(&self, build_id: &str, records: &[Record]) {
        let ended = records.iter().any(|r| r.body.is_end());
        if ended {
            // No listener: fine, the meter looks in the database when it starts.
            let _ = self.ends.send(build_id.to_owned());
        }
        let mut live = self.live.lock();
        let Some(sender) = live.get(build_id) else { return };
        for record in records {
            let (kind, data) = record.body.kind_and_data();
            // No follower now: fine, the database has it.
            let _ = sender.send(Arc::new(LiveRecord { record: record.clone(), kind, data }));
        }
        if ended || sender.receiver_count() == 0 {
            live.remove(build_id);
        }
    }
}

/// The one writer of a build's stream: numbers records, keeps them, then publishes them.
#[derive(Debug)]
pub struct Writer {
    db: Db,
    streams: Streams,
    build_id: String,
    next_seq: i64,
    /// Hides the build's secret values.
    masker: Masker,
}

impl Writer {
    /// The writer of `build_id`'s stream, continuing after what the database holds, masking
    /// the build's params.
    pub async fn open(db: &Db, streams: &Streams, build_id: &str) -> Result<Writer, DbError> {
        let next_seq = db.last_seq(build_id).await? + 1;
        let masker = masker_of(db, build_id).await?;
        Ok(Writer { db: db.clone(), streams: streams.clone(), build_id: build_id.to_owned(), next_seq, masker })
    }

    /// Keeps `bodies`, in order, masked, and hands them to live followers.
    pub async fn write(&mut self, bodies: Vec<RecordBody>) -> Result<(), DbError> {
        let records: Vec<Record> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Record { seq: self.next_seq + i as i64, body: mask_body(&self.masker, body) })
            .collect();
        self.db.append_records(&self.build_id, &records).await?;
        self.next_seq += records.len() as i64;
        self.streams.publish(&self.build_id, &records);
        Ok(())
    }

    /// Ends the build (unless it is over already: `false`), then writes its end record, the
    /// last of its stream.
    pub async fn end_build(&mut self, status: Status, error: Option<String>) -> Result<bool, DbError> {
        let error = error.map(|e| self.masker.mask(&e));
        if !self.db.finish_build(&self.build_id, status, error.as_deref()).await? {
            return Ok(false);
        }
        self.write_end(status, error).await?;
        Ok(true)
    }

    /// Writes the end record of a build already ended in the database.
    pub async fn write_end(&mut self, status: Status, error: Option<String>) -> Result<(), DbError> {
        // Its build tokens reach nothing from now on.
        self.db.drop_build_tokens(&self.build_id).await?;
        self.write(vec![RecordBody::End(BuildEnd { status, error })]).await
    }
}

/// What a record with a field that masking would make unreadable is kept as instead.
const WITHHELD: &str = "(a record was withheld: a secret value showed where it cannot be masked)";

/// What hides `build_id`'s secret values (its params).
pub(crate) async fn masker_of(db: &Db, build_id: &str) -> Result<Masker, DbError> {
    let secrets = db.build_params(build_id).await?.unwrap_or_default();
    Ok(Masker::new(secrets.values().map(String::as_str)))
}

/// `body` with every secret (and its encodings) in its text replaced by `***`.
pub(crate) fn mask_body(masker: &Masker, body: RecordBody) -> RecordBody {
    if masker.is_empty() {
        return body;
    }
    match body {
        RecordBody::Line(Line { stream, line }) => RecordBody::Line(Line { stream, line: masker.mask(&line) }),
        RecordBody::End(BuildEnd { status, error }) => {
            RecordBody::End(BuildEnd { status, error: error.map(|e| masker.mask(&e)) })
        }
        RecordBody::Event(event) => {
            // Every string of the event, keys too: its shape is the protocol's to change.
            let masked = serde_json::to_value(&event).map(|value| mask_json(masker, value));
            match masked.and_then(serde_json::from_value) {
                Ok(event) => RecordBody::Event(event),
                Err(_) => RecordBody::Line(Line {
                    stream: monkeyci_protocol::OutputStream::Stderr,
                    line: WITHHELD.to_owned(),
                }),
            }
        }
    }
}

fn mask_json(masker: &Masker, value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(masker.mask(&text)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| mask_json(masker, v)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (masker.mask(&k), mask_json(masker, v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use monkeyci_protocol::{Event, EventKind, OutputStream, ParamMap};

    use super::*;
    use crate::db::NewBuild;

    const SECRET: &str = "hunter22-secret";

    #[tokio::test]
    async fn what_the_writer_keeps_and_sends_is_masked_whoever_sent_it() {
        let (_dir, db) = crate::db::testing::acme_with(&["app"]).await;
        db.set_repo_params("acme", "app", &ParamMap::from([("T".to_owned(), SECRET.to_owned())])).await.unwrap();
        let new = NewBuild { org: "acme".into(), repo: "app".into(), source: "api".into(), ..NewBuild::default() };
        let build = db.queue_build(&new).await.unwrap();
        let streams = Streams::default();
        let mut live = streams.subscribe(&build.id);
        let mut writer = Writer::open(&db, &streams, &build.id).await.unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
        writer
            .write(vec![
                RecordBody::Line(Line { stream: OutputStream::Stdout, line: format!("token {SECRET}") }),
                RecordBody::Event(Event::now(EventKind::JobOutput {
                    job_id: "deploy".into(),
                    stream: OutputStream::Stderr,
                    line: format!("encoded {encoded}"),
                })),
            ])
            .await
            .unwrap();
        assert!(writer.end_build(Status::Error, Some(format!("failed with {SECRET}"))).await.unwrap());
        let kept = db.records_after(&build.id, 0, 100).await.unwrap();
        let mut sent = Vec::new();
        while let Ok(live) = live.try_recv() {
            // What followers get is the record's one encoding.
            assert_eq!((live.kind, live.data.clone()), live.record.body.kind_and_data());
            sent.push(live.record.clone());
        }
        assert_eq!(kept, sent, "the same records kept and sent");
        let text = serde_json::to_string(&kept).unwrap();
        assert!(!text.contains(SECRET) && !text.contains(&encoded), "{text}");
        for masked in ["token ***", "encoded ***", "failed with ***"] {
            assert!(text.contains(masked), "{masked} not in {text}");
        }
        let ended = db.build(&build.id).await.unwrap().unwrap();
        assert_eq!(ended.error.as_deref(), Some("failed with ***"));
    }
}
