//! Blocked jobs of a build run by the server wait for a person: the [`Asker`] given to the
//! build API asks through the agent's [`Link`] (which notes the question in the database:
//! `waiting`) and answers once someone decided through
//! `POST /api/v1/builds/{id}/jobs/{job}/approve` or `/reject` (asked again every [`POLL`]). A
//! decision stands: a build restarted after a crash that asks again gets it at once.
//! Meanwhile the job shows as blocked in the build's events (the script's `job/blocked`).

use std::time::Duration;

use monkeyci_build::api::{Approvals, Asker};
use tokio::sync::{mpsc, oneshot};

use crate::link::{Approval, Link};

/// How often a waiting question looks for its decision.
pub const POLL: Duration = Duration::from_millis(500);

/// The approvals of a build run by the server: nothing approved up front; every blocked job
/// asked of whoever decides through the API. The task answering lives as long as the build's
/// API holds the [`Asker`].
pub fn for_build<L: Link>(link: L, build_id: String) -> Approvals {
    Approvals { approved: Default::default(), asker: Some(asker(link, build_id)) }
}

/// An [`Asker`] that waits for each question's decision on the server.
pub fn asker<L: Link>(link: L, build_id: String) -> Asker {
    let (asker, mut questions) = mpsc::unbounded_channel::<(String, oneshot::Sender<bool>)>();
    tokio::spawn(async move {
        while let Some((job, answer)) = questions.recv().await {
            let (link, build_id) = (link.clone(), build_id.clone());
            // Each question on its own: two blocked jobs wait at once.
            tokio::spawn(async move {
                let mut answer = answer;
                let approved = tokio::select! {
                    decided = decision(&link, &build_id, &job) => decided,
                    // The script stopped asking (the build ended or was canceled).
                    () = answer.closed() => return,
                };
                let _ = answer.send(approved);
            });
        }
    });
    asker
}

/// Waits until someone decided about `job`: whether it may run (a server that refuses, or
/// cannot be reached for the link's patience, declines, so the build goes on rather than
/// hanging).
async fn decision<L: Link>(link: &L, build_id: &str, job: &str) -> bool {
    loop {
        match link.approval(build_id, job).await {
            Ok(Approval::Approved) => return true,
            Ok(Approval::Rejected) => return false,
            Ok(Approval::Waiting) => {}
            Err(err) => {
                let why = monkeyci_protocol::error_chain(&err);
                tracing::error!("build {build_id}: cannot read the decision about job {job}: {why}");
                return false;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
