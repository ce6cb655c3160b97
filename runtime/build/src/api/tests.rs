//! The build API's contract: tokens, status codes, bodies.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use monkeyci_protocol::{Event, EventKind, ParamMap};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::{BuildApiState, BuildToken, router};

struct Api {
    state: BuildApiState,
    token: BuildToken,
    events: mpsc::Receiver<Event>,
}

fn api() -> Api {
    api_asking(None)
}

/// The API of a build approving `deploy` up front and asking `asker` about other jobs.
fn api_asking(asker: Option<super::Asker>) -> Api {
    api_with(asker, 1024, super::state::ROOM_WAIT)
}

/// The same, with an event stream holding `capacity`, waited for `room_wait` at most.
fn api_with(asker: Option<super::Asker>, capacity: usize, room_wait: std::time::Duration) -> Api {
    let token = BuildToken::generate().unwrap();
    let (tx, events) = mpsc::channel(capacity);
    let params = ParamMap::from([("TOKEN".to_owned(), "s3cret".to_owned())]);
    let state = BuildApiState::new(
        token.clone(),
        params,
        super::Approvals { approved: BTreeSet::from(["deploy".to_owned()]), asker },
        tx,
        None,
        None,
        Default::default(),
    )
    .with_room_wait(room_wait);
    Api { state, token, events }
}

async fn call(api: &Api, method: &str, path: &str, token: Option<&str>, body: &str) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router(api.state.clone()).oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, json)
}

#[tokio::test]
async fn rejects_missing_and_wrong_tokens() {
    let api = api();
    let (status, body) = call(&api, "GET", "/params", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "missing bearer token");
    let (status, body) = call(&api, "GET", "/params", Some("not-the-token"), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid token for this build");
    let other = BuildToken::generate().unwrap();
    let (status, _) = call(&api, "POST", "/events", Some(other.as_str()), "[]").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn serves_params_to_the_build() {
    let api = api();
    let (status, body) = call(&api, "GET", "/params", Some(api.token.as_str()), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({ "TOKEN": "s3cret" }));
}

#[tokio::test]
async fn accepts_events_in_order() {
    let mut api = api();
    let body =
        r#"[{"time":1,"type":"job/pending","job_id":"a"},{"time":2,"type":"job/start","job_id":"a","attempt":1}]"#;
    let (status, _) = call(&api, "POST", "/events", Some(api.token.as_str()), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(api.events.recv().await.unwrap().kind, EventKind::JobPending { job_id: "a".into() });
    assert_eq!(api.events.recv().await.unwrap().kind, EventKind::JobStart { job_id: "a".into(), attempt: 1 });
}

#[tokio::test]
async fn malformed_events_get_400_and_lose_nothing_before_them() {
    let mut api = api();
    let token = api.token.as_str().to_owned();
    let (status, body) = call(&api, "POST", "/events", Some(&token), r#"[{"time":1,"type":"job/explode"}]"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("not a JSON array of events"), "{body}");
    let (status, _) = call(&api, "POST", "/events", Some(&token), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(api.events.try_recv().is_err(), "a rejected batch must not be half-applied");
}

#[tokio::test]
async fn approves_only_the_approved_jobs() {
    let api = api();
    let (status, body) = call(&api, "POST", "/jobs/deploy/approval", Some(api.token.as_str()), "").await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({ "approved": true })));
    let (_, body) = call(&api, "POST", "/jobs/publish/approval", Some(api.token.as_str()), "").await;
    assert_eq!(body, serde_json::json!({ "approved": false }));
}

#[tokio::test]
async fn other_blocked_jobs_are_put_to_the_asker() {
    let (asker, mut questions) = mpsc::unbounded_channel::<(String, tokio::sync::oneshot::Sender<bool>)>();
    let api = api_asking(Some(asker));
    let answering = tokio::spawn(async move {
        let mut asked = Vec::new();
        while let Some((job, answer)) = questions.recv().await {
            let _ = answer.send(job == "publish");
            asked.push(job);
        }
        asked
    });
    for (job, approved) in [("deploy", true), ("publish", true), ("delete", false)] {
        let path = format!("/jobs/{job}/approval");
        let (_, body) = call(&api, "POST", &path, Some(api.token.as_str()), "").await;
        assert_eq!(body, serde_json::json!({ "approved": approved }), "{job}");
    }
    drop(api);
    assert_eq!(answering.await.unwrap(), ["publish", "delete"], "jobs approved up front are not asked about");
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let api = api();
    let (status, doc) = call(&api, "GET", "/openapi.json", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let documented: BTreeSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    // The routes as the router declares them, read from its source so none can be forgotten.
    let routed: BTreeSet<&str> = include_str!("mod.rs")
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|path| *path != "/openapi.json")
        .collect();
    assert!(routed.len() >= 8, "{routed:?}");
    assert_eq!(documented, routed);
}

/// #9: `POST /events` trusted the job id it was given, and `../../../x` wrote a log file
/// outside the build record. Every id the API receives is checked on this side.
#[tokio::test]
async fn events_and_approvals_with_invalid_job_ids_are_refused() {
    let mut api = api();
    let token = api.token.as_str().to_owned();
    for bad in ["../../../x", "", "a/b", "..", "x y"] {
        let events = serde_json::json!([
            {"time": 1, "type": "job/pending", "job_id": "fine"},
            {"time": 2, "type": "job/output", "job_id": bad, "stream": "stdout", "line": "hello"},
        ]);
        let (status, body) = call(&api, "POST", "/events", Some(&token), &events.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert!(body["error"].as_str().unwrap().contains("event 1 (job/output)"), "{body}");
    }
    let entry = serde_json::json!([{"time": 1, "type": "journal/record",
        "entry": {"job_id": "../x", "seq": 0, "kind": "job/start", "attempt": 1}}]);
    let (status, body) = call(&api, "POST", "/events", Some(&token), &entry.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("invalid character '/' in job id"), "{body}");
    assert!(api.events.try_recv().is_err(), "nothing of a refused batch is taken");

    let (status, _) = call(&api, "POST", "/jobs/..%2Fx/approval", Some(&token), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// #9: a batch over axum's default body limit (2 MB) was answered 413 and dropped: a job's
/// 3 MB output lost its end. Such a batch is taken whole.
#[tokio::test]
async fn a_batch_of_several_megabytes_is_taken() {
    let mut api = api();
    let token = api.token.as_str().to_owned();
    let line = "x".repeat(3 * 1024 * 1024);
    let events =
        serde_json::json!([{"time": 1, "type": "job/output", "job_id": "big", "stream": "stdout", "line": line}]);
    let (status, body) = call(&api, "POST", "/events", Some(&token), &events.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let Some(Event { kind: EventKind::JobOutput { line: got, .. }, .. }) = api.events.try_recv().ok() else {
        panic!("the event was not taken")
    };
    assert_eq!(got.len(), line.len());
}

/// Issue "hardening": the sdk resends a batch until it is acknowledged, so a batch whose answer
/// was lost arrives twice. Each (launch, seq) is applied once; each launch numbers its own.
#[tokio::test]
async fn a_numbered_batch_sent_again_is_acknowledged_and_not_applied_twice() {
    let mut api = api();
    let token = api.token.as_str().to_owned();
    let batch = |launch: u32, seq: u64, job: &str| {
        serde_json::json!({"launch": launch, "seq": seq, "events": [
            {"time": 1, "type": "job/pending", "job_id": job},
            {"time": 2, "type": "job/output", "job_id": job, "stream": "stdout", "line": format!("line {seq}")},
        ]})
        .to_string()
    };
    let taken = |api: &mut Api| std::iter::from_fn(|| api.events.try_recv().ok()).count();

    let (status, _) = call(&api, "POST", "/events", Some(&token), &batch(1, 1, "a")).await;
    assert_eq!((status, taken(&mut api)), (StatusCode::ACCEPTED, 2));
    let (status, _) = call(&api, "POST", "/events", Some(&token), &batch(1, 1, "a")).await;
    assert_eq!((status, taken(&mut api)), (StatusCode::OK, 0), "a batch sent again is not applied again");
    let (status, _) = call(&api, "POST", "/events", Some(&token), &batch(1, 2, "a")).await;
    assert_eq!((status, taken(&mut api)), (StatusCode::ACCEPTED, 2));
    let (status, _) = call(&api, "POST", "/events", Some(&token), &batch(1, 1, "a")).await;
    assert_eq!((status, taken(&mut api)), (StatusCode::OK, 0), "an older batch is not applied again");

    // The next launch of the script numbers its batches from 1 again.
    let (status, _) = call(&api, "POST", "/events", Some(&token), &batch(2, 1, "b")).await;
    assert_eq!((status, taken(&mut api)), (StatusCode::ACCEPTED, 2));

    // A gap is a client bug: refused, saying which batch is missing.
    let (status, body) = call(&api, "POST", "/events", Some(&token), &batch(1, 4, "a")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("batch 4 of launch 1 arrived before batch 3"), "{body}");
    let (status, body) = call(&api, "POST", "/events", Some(&token), &batch(1, 0, "a")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&api, "POST", "/events", Some(&token), r#"{"launch": 1, "events": []}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("missing field `seq`"), "{body}");
    assert_eq!(taken(&mut api), 0);

    // The same batch sent twice at once (a retry racing a slow answer) is applied once.
    let third = batch(1, 3, "a");
    let (first, second) = tokio::join!(
        call(&api, "POST", "/events", Some(&token), &third),
        call(&api, "POST", "/events", Some(&token), &third)
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::ACCEPTED]);
    assert_eq!(taken(&mut api), 2);
}

/// A numbered batch of launch 1 holding a journal record and a `job/pending`.
fn journaled_batch(seq: u64) -> String {
    serde_json::json!({"launch": 1, "seq": seq, "events": [
        {"time": 1, "type": "journal/record", "entry": {"job_id": "a", "seq": 0, "kind": "job/start", "attempt": 1}},
        {"time": 2, "type": "job/pending", "job_id": "a"},
    ]})
    .to_string()
}

async fn journal_entries(api: &Api) -> usize {
    api.state.inner.journal.journal().await.unwrap().entries.len()
}

/// The journal record of a batch was written before its event was handed on; when that failed
/// (the build was over) the sdk resent the batch, and the record was written again, once per
/// attempt. A record is now written only once its event can be handed on.
#[tokio::test]
async fn a_batch_that_cannot_be_handed_on_writes_its_journal_record_once_at_most() {
    let mut api = api();
    let token = api.token.as_str().to_owned();
    // The build is over: nobody takes its events.
    drop(std::mem::replace(&mut api.events, mpsc::channel(1).1));
    for _ in 0..3 {
        let (status, body) = call(&api, "POST", "/events", Some(&token), &journaled_batch(1)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    let written = journal_entries(&api).await;
    assert!(written <= 1, "the record was written {written} times");
}

/// The event stream is bounded: `POST /events` waits for room, and when the stream stays full
/// answers 503 keeping what it took; the batch sent again is taken up where it stopped, so
/// each event (and journal record) is taken once.
#[tokio::test]
async fn a_batch_waiting_too_long_for_room_is_refused_and_taken_up_where_it_stopped() {
    let mut api = api_with(None, 1, std::time::Duration::from_millis(200));
    let token = api.token.as_str().to_owned();
    let filler = r#"[{"time":1,"type":"job/pending","job_id":"first"}]"#;
    assert_eq!(call(&api, "POST", "/events", Some(&token), filler).await.0, StatusCode::ACCEPTED);

    let (status, body) = call(&api, "POST", "/events", Some(&token), &journaled_batch(1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("stayed full"), "{body}");
    assert_eq!(journal_entries(&api).await, 0, "nothing is written without room for its event");

    // The build reads again; the batch sent again is taken whole, once.
    let mut events = std::mem::replace(&mut api.events, mpsc::channel(1).1);
    let taking = tokio::spawn(async move {
        let mut taken = Vec::new();
        while taken.len() < 3 {
            taken.push(events.recv().await.unwrap().kind.type_name().to_owned());
        }
        taken
    });
    let (status, _) = call(&api, "POST", "/events", Some(&token), &journaled_batch(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = call(&api, "POST", "/events", Some(&token), &journaled_batch(1)).await;
    assert_eq!(status, StatusCode::OK, "a batch applied is not applied again");
    assert_eq!(taking.await.unwrap(), ["job/pending", "journal/record", "job/pending"]);
    assert_eq!(journal_entries(&api).await, 1);
}
