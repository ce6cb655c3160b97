//! `GET /params`: the build parameters.

use axum::Json;
use axum::extract::State;
use monkeyci_protocol::ParamMap;

use super::auth::Authorized;
use super::state::BuildApiState;

pub(super) async fn params_get(_auth: Authorized, State(state): State<BuildApiState>) -> Json<ParamMap> {
    Json(state.inner.params.clone())
}
