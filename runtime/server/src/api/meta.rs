//! The server about itself: `/healthz`, and the OpenAPI document of the API
//! ([`skeleton`] is what the handlers' own descriptions are added to).

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{Components, InfoBuilder, OpenApi, OpenApiBuilder};

/// The name of the bearer-token scheme that handlers' `security(...)` refer to.
const BEARER: &str = "bearer";

/// The document before any path: what the API is, its tags and how a token is sent.
pub(super) fn skeleton() -> OpenApi {
    let mut components = Components::new();
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A token from `POST /api/v1/tokens` (or the server's first admin token)"))
                .build(),
        ),
    );
    let tag = |name: &str, description: &str| TagBuilder::new().name(name).description(Some(description)).build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("MonkeyCI server")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION"))),
        )
        .components(Some(components))
        .tags(Some([
            tag("orgs", "Orgs, their repositories, and tokens"),
            tag("builds", "Builds and their streams of records"),
            tag("params", "Params: org param sets, repositories' own params, a build's params"),
            tag("live", "Live events of an org or a repository: every build's records in one order"),
            tag("webhooks", "Forge deliveries that queue builds"),
            tag("agents", "The agent protocol: claim builds, heartbeats, records, ends (agent tokens only)"),
            tag("server", "The server itself"),
        ]))
        .build()
}

/// Whether the server answers.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "server",
    responses((status = 200, description = "It does", content_type = "text/plain", body = String, example = "ok\n"))
)]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// This document. The router puts it in an [`Extension`] once built.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "server",
    responses((status = 200, description = "The OpenAPI document of this API", body = Object))
)]
pub(super) async fn openapi(Extension(doc): Extension<Arc<OpenApi>>) -> Json<OpenApi> {
    Json(OpenApi::clone(&doc))
}
