//! The server's side of the agent protocol ([`crate::link`]): claim, heartbeat, append and
//! end on the database, with every record stored handed to the build's live followers
//! ([`Streams`]). The HTTP handlers of remote agents (`/api/v1/agent/...`) and the agent
//! embedded in the server (as its [`Link`]) both go through [`Dispatch`], so a build's records
//! are kept and followed the same way whichever agent runs it.

use crate::db::agents::Refusal;
use std::collections::HashMap;
use std::sync::Arc;

use monkeyci_protocol::{Masker, ParamMap};
use parking_lot::Mutex;

use crate::db::jobs_api::Decision;
use crate::db::{Db, DbError};
use crate::link::{Approval, Beat, Claim, EndBuild, Link, LinkError};
use crate::model::{RecordBody, Status};
use crate::stream::{Streams, Writer, mask_body, masker_of};

/// The agent protocol on this server's database and streams.
#[derive(Debug, Clone)]
pub struct Dispatch {
    db: Db,
    streams: Streams,
    /// What hides each running build's params in what its agent appends, made at its first
    /// append (after a restart too) and dropped at its end.
    maskers: Arc<Mutex<HashMap<String, Arc<Masker>>>>,
}

/// Why the server does not do what an agent asked.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Refused: no such build, not running, a gap, or a bad end.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// An end that is not final (`queued`, `running`).
    #[error("status: a build ends as success, failure, error or canceled, not {0}")]
    NotFinal(Status),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Dispatch {
    /// The protocol on `db`, with records handed to `streams`' followers.
    pub fn new(db: Db, streams: Streams) -> Dispatch {
        Dispatch { db, streams, maskers: Arc::default() }
    }

    /// Claims the oldest queued build for `agent`, with its repository's URL and main branch.
    /// A build whose repository was removed meanwhile ends in error, and the next is taken.
    pub async fn claim(&self, agent: &str) -> Result<Option<Claim>, DispatchError> {
        loop {
            let Some(build) = crate::meter::claim(&self.db, &self.streams, agent).await? else { return Ok(None) };
            match self.db.repo(&build.org, &build.repo).await? {
                Some((repo, _)) => {
                    let last_seq = self.db.last_seq(&build.id).await?;
                    let build_token = crate::auth::create_build_token(&self.db, &build.id).await?;
                    return Ok(Some(Claim {
                        build,
                        url: repo.url,
                        main_branch: repo.main_branch,
                        last_seq,
                        build_token,
                    }));
                }
                None => {
                    let why = format!("the repository {}/{} was removed", build.org, build.repo);
                    Writer::open(&self.db, &self.streams, &build.id).await?.end_build(Status::Error, Some(why)).await?;
                }
            }
        }
    }

    /// Notes that the build's agent is alive; its cancel requests.
    pub async fn heartbeat(&self, build_id: &str, commit: Option<&str>) -> Result<Beat, DispatchError> {
        let cancel_requests = self.db.agent_heartbeat(build_id, commit).await??;
        Ok(Beat { cancel_requests })
    }

    /// Stores the records numbered from `first_seq` that are not stored yet, hands those to
    /// the build's followers, and answers the number of the last stored.
    pub async fn append(&self, build_id: &str, first_seq: i64, records: Vec<RecordBody>) -> Result<i64, DispatchError> {
        let masker = self.masker(build_id).await?;
        let records = records.into_iter().map(|body| mask_body(&masker, body)).collect();
        let (last, fresh) = self.db.append_numbered(build_id, first_seq, records).await??;
        self.streams.publish(build_id, &fresh);
        Ok(last)
    }

    /// Ends a running build once its agent's records are all kept, and writes its end record;
    /// `false` if it was over already (that end stands).
    pub async fn end(&self, build_id: &str, end: EndBuild) -> Result<bool, DispatchError> {
        if !end.status.is_final() {
            return Err(DispatchError::NotFinal(end.status));
        }
        let Some(build) = self.db.build(build_id).await? else {
            return Err(Refusal::NoBuild(build_id.to_owned()).into());
        };
        if build.status.is_final() {
            return Ok(false);
        }
        let stored = self.db.last_seq(build_id).await?;
        if stored < end.last_seq {
            return Err(Refusal::Gap { expected: stored + 1, got: end.last_seq + 1 }.into());
        }
        let ended = Writer::open(&self.db, &self.streams, build_id).await?.end_build(end.status, end.error).await?;
        self.maskers.lock().remove(build_id);
        Ok(ended)
    }

    /// Notes that `job` of the running build waits for a decision; where it stands.
    pub async fn approval(&self, build_id: &str, job: &str) -> Result<Approval, DispatchError> {
        let Some(build) = self.db.build(build_id).await? else {
            return Err(Refusal::NoBuild(build_id.to_owned()).into());
        };
        if build.status != Status::Running {
            return Err(Refusal::NotRunning { id: build_id.to_owned(), status: build.status }.into());
        }
        Ok(match self.db.ask_approval(build_id, job).await? {
            Decision::Waiting => Approval::Waiting,
            Decision::Approved => Approval::Approved,
            Decision::Rejected => Approval::Rejected,
        })
    }

    /// The masker of `build_id`'s params.
    async fn masker(&self, build_id: &str) -> Result<Arc<Masker>, DbError> {
        if let Some(masker) = self.maskers.lock().get(build_id) {
            return Ok(Arc::clone(masker));
        }
        let masker = Arc::new(masker_of(&self.db, build_id).await?);
        self.maskers.lock().insert(build_id.to_owned(), Arc::clone(&masker));
        Ok(masker)
    }
}

impl From<DispatchError> for LinkError {
    fn from(err: DispatchError) -> LinkError {
        match err {
            DispatchError::Db(err) => LinkError::Unreachable(Box::new(err)),
            other => LinkError::Refused(other.to_string()),
        }
    }
}

impl Link for Dispatch {
    async fn claim(&self, agent: &str) -> Result<Option<Claim>, LinkError> {
        Ok(Dispatch::claim(self, agent).await?)
    }

    async fn heartbeat(&self, build_id: &str, commit: Option<&str>) -> Result<Beat, LinkError> {
        Ok(Dispatch::heartbeat(self, build_id, commit).await?)
    }

    async fn append(&self, build_id: &str, first_seq: i64, records: Vec<RecordBody>) -> Result<i64, LinkError> {
        Ok(Dispatch::append(self, build_id, first_seq, records).await?)
    }

    async fn end(&self, build_id: &str, end: EndBuild) -> Result<bool, LinkError> {
        Ok(Dispatch::end(self, build_id, end).await?)
    }

    async fn approval(&self, build_id: &str, job: &str) -> Result<Approval, LinkError> {
        Ok(Dispatch::approval(self, build_id, job).await?)
    }

    async fn params(&self, _build_id: &str, build_token: &str) -> Result<ParamMap, LinkError> {
        let params = crate::auth::build_params(&self.db, build_token).await.map_err(DispatchError::from)?;
        params.ok_or_else(|| LinkError::Refused("the build's token does not reach its params".to_owned()))
    }
}
