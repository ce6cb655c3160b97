//! The server's HTTP interface: the REST API under `/api/v1`, live events, webhooks,
//! `/healthz` and the API's OpenAPI document at `/api/v1/openapi.json`. The routes below are the
//! table of contents; each handler is small and leaves the work to the database, the stream and
//! the agent. Each route is registered with its handler's `#[utoipa::path]` description, so the
//! document is generated from the handlers and names every route.

mod agents;
mod builds;
mod error;
mod jobs;
mod live;
mod meta;
mod orgs;
mod params;
mod state;
mod usage;
mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use builds::{ListQuery, Queued, RecordsQuery, Trigger};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use jobs::{Decided, Job, JobCommand, JobLog, LogKind, LogLine, LogsQuery};
pub use live::{OrgRecord, OrgRecordBody};
pub use orgs::{AddRepo, CreateOrg, CreateToken};
pub use params::{PutParamSet, PutRepoParams};
pub use usage::UsageQuery;
pub use webhooks::Accepted;

pub use state::AppState;

/// The largest webhook body taken: GitHub caps its payloads at 25 MB.
const WEBHOOK_BODY_MAX: usize = 25 * 1024 * 1024;

/// The routes, each with its description in the OpenAPI document.
fn routes() -> OpenApiRouter<AppState> {
    let webhook_body = DefaultBodyLimit::max(WEBHOOK_BODY_MAX);
    OpenApiRouter::with_openapi(meta::skeleton())
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::openapi))
        .routes(routes!(orgs::list, orgs::create))
        .routes(routes!(orgs::repos, orgs::add_repo))
        .routes(routes!(orgs::repo))
        .routes(routes!(builds::trigger))
        .routes(routes!(usage::usage))
        .routes(routes!(usage::set_credits))
        .routes(routes!(orgs::create_token))
        .routes(routes!(builds::list))
        .routes(routes!(builds::show))
        .routes(routes!(builds::cancel))
        .routes(routes!(builds::records))
        .routes(routes!(builds::events))
        .routes(routes!(agents::claim))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::append).layer(DefaultBodyLimit::max(crate::link::MAX_APPEND_BYTES)))
        .routes(routes!(agents::end))
        .routes(routes!(agents::approval))
        .routes(routes!(params::list_sets))
        .routes(routes!(params::put_set, params::delete_set))
        .routes(routes!(params::delete_set_param))
        .routes(routes!(params::list_repo, params::put_repo))
        .routes(routes!(params::delete_repo_param))
        .routes(routes!(params::build))
        .routes(routes!(jobs::jobs))
        .routes(routes!(jobs::logs))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::approve))
        .routes(routes!(jobs::reject))
        .routes(routes!(live::org_events))
        .routes(routes!(live::org_records))
        .routes(routes!(live::repo_events))
        .routes(routes!(live::repo_records))
        .routes(routes!(webhooks::receive).layer(webhook_body))
        .routes(routes!(webhooks::receive_for_repo).layer(webhook_body))
}

/// The OpenAPI document of the API, as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> OpenApi {
    routes().into_openapi()
}

/// The router, serving the API with `state`.
pub fn router(state: AppState) -> Router {
    let (router, doc) = routes().split_for_parts();
    router
        .layer(Extension(Arc::new(doc)))
        .fallback(|| async { error::ApiError::NotFound("no such route".to_owned()) })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    /// The methods axum's router answers on each of its paths, read from its `Debug` output
    /// (axum has no other way to list them): `RouteId(n): "/path"` in its path table, and
    /// `RouteId(n): MethodRouter(... allow_header: Bytes(b"GET,HEAD,POST") ...)` per route.
    fn registered(router: &Router<AppState>) -> BTreeSet<(String, String)> {
        let debug = format!("{router:?}");
        let routes = debug.split("fallback_router:").next().unwrap_or_default();
        let mut paths = std::collections::BTreeMap::new();
        let mut methods = std::collections::BTreeMap::new();
        for piece in routes.split("RouteId(").skip(1) {
            let (id, rest) = piece.split_once(')').unwrap();
            if let Some(path) = rest.strip_prefix(": \"") {
                paths.insert(id.to_owned(), path.split('"').next().unwrap().to_owned());
            } else if rest.starts_with(": MethodRouter(") {
                let allow = rest.split("allow_header: Bytes(b\"").nth(1).unwrap().split('"').next().unwrap();
                methods.insert(id.to_owned(), allow.to_owned());
            } else {
                panic!("a route that is not a method router: RouteId({piece}");
            }
        }
        assert_eq!(paths.len(), methods.len(), "every route has a path and methods: {debug}");
        let mut found = BTreeSet::new();
        for (id, path) in paths {
            for method in methods[&id].split(',').filter(|m| *m != "HEAD") {
                found.insert((path.clone(), method.to_owned()));
            }
        }
        found
    }

    /// Each path and method the document describes, with its operation.
    fn documented(doc: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                found.push((path.clone(), method.to_uppercase(), operation.clone()));
            }
        }
        found
    }

    #[test]
    fn every_route_is_in_the_document_and_nothing_else() {
        let (router, doc) = routes().split_for_parts();
        let doc = serde_json::to_value(&doc).unwrap();
        let in_router = registered(&router);
        assert!(in_router.contains(&("/healthz".to_owned(), "GET".to_owned())), "routes not read: {in_router:?}");
        assert!(in_router.len() >= 15, "routes not read: {in_router:?}");
        let in_doc: BTreeSet<_> = documented(&doc).into_iter().map(|(path, method, _)| (path, method)).collect();
        let undescribed: Vec<_> = in_router.difference(&in_doc).collect();
        let unrouted: Vec<_> = in_doc.difference(&in_router).collect();
        assert!(
            undescribed.is_empty() && unrouted.is_empty(),
            "routed without a description (register them with `routes!`): {undescribed:?}; \
             described but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_and_served_as_it_is_built() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(doc["info"]["title"], "MonkeyCI server");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        let served: Vec<_> = documented(&doc).into_iter().map(|(path, method, _)| (path, method)).collect();
        assert!(served.contains(&("/api/v1/openapi.json".to_owned(), "GET".to_owned())));
    }

    #[test]
    fn every_operation_names_its_path_params_and_the_token_it_needs() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut ids = BTreeSet::new();
        for (path, method, operation) in documented(&doc) {
            let what = format!("{method} {path}");
            assert!(ids.insert(operation["operationId"].as_str().unwrap().to_owned()), "{what}: operationId twice");
            let in_path: BTreeSet<_> =
                path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect();
            let params = operation["parameters"].as_array().cloned().unwrap_or_default();
            let described: BTreeSet<_> =
                params.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap().to_owned()).collect();
            assert_eq!(in_path, described, "{what}: path params");
            let needs_token = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
            let security = operation.get("security").cloned().unwrap_or(Value::Null);
            let responses = operation["responses"].as_object().unwrap();
            if needs_token {
                assert_eq!(security, serde_json::json!([{ "bearer": [] }]), "{what}: security");
                assert!(responses.contains_key("401"), "{what}: no 401");
            } else {
                assert_eq!(security, Value::Null, "{what}: needs no token");
            }
            if path.starts_with("/webhook/") {
                for status in ["200", "202", "204", "400", "401"] {
                    assert!(responses.contains_key(status), "{what}: no {status}");
                }
                let headers: BTreeSet<_> =
                    params.iter().filter(|p| p["in"] == "header").map(|p| p["name"].as_str().unwrap()).collect();
                assert!(headers.contains("X-Hub-Signature-256") && headers.contains("X-Gitlab-Token"), "{what}");
            }
        }
    }

    #[test]
    fn the_event_stream_is_documented_as_server_sent_events() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let ok = &doc["paths"]["/api/v1/builds/{id}/events"]["get"]["responses"]["200"];
        assert!(ok["content"]["text/event-stream"].is_object(), "{ok}");
        let description = ok["description"].as_str().unwrap();
        for event in ["`event`", "`line`", "`end`"] {
            assert!(description.contains(event), "{description}");
        }
    }
}
