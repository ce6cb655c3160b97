//! A build's stream of records on the server: kept in the database first, then handed to
//! whoever follows the build live (the in-process bus). A follower reads the database up to
//! where it joined and the bus after, so nothing is lost or repeated, across reconnects too
//! (records are numbered; SSE's `Last-Event-ID` says where a follower was). Whoever needs
//! every build's end (the meter) hears of each build whose end record was kept
//! ([`Streams::subscribe_ends`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::db::{Db, DbError};
use crate::model::{BuildEnd, Record, RecordBody, Status};

/// How many records a live follower may fall behind before it reads the database instead.
const LIVE_CAPACITY: usize = 1024;

/// How many build ends a listener may fall behind before it is told it lagged.
const ENDS_CAPACITY: usize = 256;

/// Every build's live stream, in this process.
#[derive(Debug, Clone)]
pub struct Streams {
    live: Arc<Mutex<HashMap<String, broadcast::Sender<Record>>>>,
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
    pub fn subscribe(&self, build_id: &str) -> broadcast::Receiver<Record> {
        self.live.lock().entry(build_id.to_owned()).or_insert_with(|| broadcast::channel(LIVE_CAPACITY).0).subscribe()
    }

    fn publish(&self, build_id: &str, records: &[Record]) {
        let ended = records.iter().any(|r| r.body.is_end());
        if ended {
            // No listener: fine, the meter looks in the database when it starts.
            let _ = self.ends.send(build_id.to_owned());
        }
        let mut live = self.live.lock();
        let Some(sender) = live.get(build_id) else { return };
        for record in records {
            // No follower now: fine, the database has it.
            let _ = sender.send(record.clone());
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
}

impl Writer {
    /// The writer of `build_id`'s stream, continuing after what the database holds.
    pub async fn open(db: &Db, streams: &Streams, build_id: &str) -> Result<Writer, DbError> {
        let next_seq = db.last_seq(build_id).await? + 1;
        Ok(Writer { db: db.clone(), streams: streams.clone(), build_id: build_id.to_owned(), next_seq })
    }

    /// Keeps `bodies`, in order, and hands them to live followers.
    pub async fn write(&mut self, bodies: Vec<RecordBody>) -> Result<(), DbError> {
        let records: Vec<Record> =
            bodies.into_iter().enumerate().map(|(i, body)| Record { seq: self.next_seq + i as i64, body }).collect();
        self.db.append_records(&self.build_id, &records).await?;
        self.next_seq += records.len() as i64;
        self.streams.publish(&self.build_id, &records);
        Ok(())
    }

    /// Ends the build (unless it is over already: `false`), then writes its end record, the
    /// last of its stream.
    pub async fn end_build(&mut self, status: Status, error: Option<String>) -> Result<bool, DbError> {
        if !self.db.finish_build(&self.build_id, status, error.as_deref()).await? {
            return Ok(false);
        }
        self.write_end(status, error).await?;
        Ok(true)
    }

    /// Writes the end record of a build already ended in the database.
    pub async fn write_end(&mut self, status: Status, error: Option<String>) -> Result<(), DbError> {
        self.write(vec![RecordBody::End(BuildEnd { status, error })]).await
    }
}
