//! [`BuildApiState`]: what the handlers of one build's API serve from, and [`Approvals`]: how
//! its blocked jobs are decided. It holds the build's channels and services; it starts none.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use monkeyci_jobs::ContainerJobs;
use monkeyci_protocol::{Event, ParamMap};
use monkeyci_store::files::ActionArtifacts;
use tokio::sync::{mpsc, oneshot};

use super::token::BuildToken;
use crate::journal::JournalStore;

/// Puts blocked jobs to a person: each question is a job id and where the answer goes.
pub type Asker = mpsc::UnboundedSender<(String, oneshot::Sender<bool>)>;

/// What the API of one build serves from.
#[derive(Clone)]
pub(crate) struct BuildApiState {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) token: BuildToken,
    pub(super) params: ParamMap,
    pub(super) approved: BTreeSet<String>,
    pub(super) asker: Option<Asker>,
    pub(super) events: mpsc::Sender<Event>,
    /// How long `POST /events` waits for room in the build's event stream before it answers
    /// 503 (see [`ROOM_WAIT`]).
    pub(super) room_wait: Duration,
    pub(super) containers: Option<Arc<ContainerJobs>>,
    pub(super) artifacts: Option<Arc<ActionArtifacts>>,
    pub(super) journal: JournalStore,
    /// How far each launch of the script got in its numbered event stream; held while a
    /// batch is applied, so a batch sent twice at once is still applied once.
    pub(super) delivered: tokio::sync::Mutex<HashMap<u32, Delivered>>,
}

/// How long `POST /events` waits for room in the build's event stream (full while the
/// controller is behind) before it answers 503, keeping what it took: well within the sdk's
/// 20 s per attempt, so the sdk resends the batch and it is taken up where it stopped rather
/// than the attempt timing out while its request still waits.
pub(super) const ROOM_WAIT: Duration = Duration::from_secs(10);

/// How far one launch's numbered event stream was applied: every batch before `seq`, and the
/// first `applied` events of batch `seq` (all of them once it is `complete`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Delivered {
    pub(super) seq: u64,
    pub(super) applied: usize,
    pub(super) complete: bool,
}

/// How blocked jobs are decided: the ids approved up front, and who to ask about the others
/// (none: they are declined).
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    /// The ids of the jobs approved up front (`--approve`).
    pub approved: BTreeSet<String>,
    /// Who is asked about any other blocked job; `None`: such jobs are declined.
    pub asker: Option<Asker>,
}

impl BuildApiState {
    /// State for one build; events posted by the script arrive on `events`; container jobs
    /// are run by `containers` (none: they are refused).
    pub(crate) fn new(
        token: BuildToken,
        params: ParamMap,
        approvals: Approvals,
        events: mpsc::Sender<Event>,
        containers: Option<Arc<ContainerJobs>>,
        artifacts: Option<Arc<ActionArtifacts>>,
        journal: JournalStore,
    ) -> BuildApiState {
        let Approvals { approved, asker } = approvals;
        let delivered = tokio::sync::Mutex::default();
        let inner = Inner {
            token,
            params,
            approved,
            asker,
            events,
            room_wait: ROOM_WAIT,
            containers,
            artifacts,
            journal,
            delivered,
        };
        BuildApiState { inner: Arc::new(inner) }
    }

    /// Waits `room_wait` for room in the event stream instead of [`ROOM_WAIT`] (on a state not
    /// shared yet).
    #[cfg(test)]
    pub(super) fn with_room_wait(mut self, room_wait: Duration) -> BuildApiState {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.room_wait = room_wait;
        }
        self
    }
}
