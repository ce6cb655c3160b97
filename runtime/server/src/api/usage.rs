//! An org's usage (what its ended builds used, from the meter) and its credit limit.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Body, ErrorBody};
use super::orgs::known_org;
use super::state::{AppState, admin_only, reach};
use crate::auth::Caller;
use crate::usage::{
    BuildUsage, CreditLimit, Figures, JobUsage, Usage, day_name, day_start_ms, month_start_ms, next_day_ms,
};

/// The period of `GET /api/v1/orgs/{org}/usage`: builds that ended from `from` to `to`, both
/// days included (UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The first day, `YYYY-MM-DD` [default: the first day of this month].
    pub from: Option<String>,
    /// The last day, included, `YYYY-MM-DD` [default: today].
    pub to: Option<String>,
}

/// What the org's builds that ended in the period used: totals and each build's (and job's)
/// figures, with the org's credit limit and this month's credits.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/usage", operation_id = "org_usage", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path, description = "The org's id"), UsageQuery),
    responses(
        (status = 200, description = "The period's usage", body = Usage),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "A date that is not YYYY-MM-DD, or `to` before `from`", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(query): Query<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    reach(&caller, &org)?;
    known_org(&state, &org).await?;
    let now = i64::try_from(monkeyci_protocol::now_ms()).unwrap_or(i64::MAX);
    let day = |field: &str, value: &Option<String>, default: i64| match value {
        Some(text) => day_start_ms(text).map_err(|e| ApiError::Invalid(format!("{field}: {e}"))),
        None => Ok(default),
    };
    let from = day("from", &query.from, month_start_ms(now))?;
    let to = day("to", &query.to, now)?;
    if to < from {
        return Err(ApiError::Invalid(format!("to: {} is before from: {}", day_name(to), day_name(from))));
    }
    let mut totals = Figures::default();
    let builds = state
        .db
        .usage(&org, from, next_day_ms(to))
        .await?
        .into_iter()
        .map(|(metered, repo, number)| {
            let figures = Figures::of(&metered);
            totals.add(&figures);
            BuildUsage {
                build_id: metered.build_id.clone(),
                repo,
                number,
                ended_ms: metered.ended_ms,
                figures,
                jobs: metered.jobs.iter().map(JobUsage::from).collect(),
            }
        })
        .collect();
    let credits_this_month = state.db.credit_ms_since(&org, month_start_ms(now)).await? as f64 / 1000.0;
    Ok(Json(Usage {
        org: org.clone(),
        from: day_name(from),
        to: day_name(to),
        totals,
        credit_limit: state.db.credit_limit(&org).await?,
        credits_this_month,
        builds,
    }))
}

/// Sets or removes an org's monthly credit limit (admin only). Once its builds used that many
/// credits in a calendar month (UTC), each further build ends in error, saying so, instead of
/// running.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org}/credits", operation_id = "set_org_credits", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path, description = "The org's id")),
    request_body = CreditLimit,
    responses(
        (status = 200, description = "The limit now", body = CreditLimit),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "A negative limit", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn set_credits(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<CreditLimit>,
) -> Result<Json<CreditLimit>, ApiError> {
    admin_only(&caller)?;
    known_org(&state, &org).await?;
    if body.monthly_limit.is_some_and(|limit| limit < 0) {
        return Err(ApiError::Invalid("monthly_limit: a limit is 0 or more credits".to_owned()));
    }
    state.db.set_credit_limit(&org, body.monthly_limit).await?;
    Ok(Json(body))
}
