//! API tokens and ids: making them (random, from the OS), keeping only a token's hash, and
//! what a presented token may reach ([`Caller`]).
//!
//! A token is `mci_` and 64 hex digits, shown once when made; the database keeps its SHA-256.
//! An admin token reaches everything; an org token only its org's orgs, repositories, params
//! and builds; an agent token only the agent protocol (claim builds, say they are alive, append
//! their records, end them), and nothing else reaches that. A build token, made when an agent
//! claims a build, reaches only that build's params, and only while the build runs.

use monkeyci_protocol::ParamMap;
use sha2::{Digest, Sha256};

use crate::db::agents::TokenScope;
use crate::db::{Db, DbError};

/// The prefix of every API token, so a leaked one is recognisable (and secret scanners can
/// match it).
pub const TOKEN_PREFIX: &str = "mci_";

/// What a request's token may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Everything.
    Admin,
    /// One org's orgs, repositories, params and builds.
    Org(String),
    /// An agent: the agent protocol's routes only (`/api/v1/agent/...`).
    Agent,
    /// The params of this one build, while it runs (nothing else).
    Build(String),
}

impl Caller {
    /// Whether the caller may reach `org`'s things.
    pub fn reaches(&self, org: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Org(own) => own == org,
            Caller::Agent | Caller::Build(_) => false,
        }
    }

    /// The orgs the caller may list (`None`: all).
    pub fn orgs(&self) -> Option<Vec<String>> {
        match self {
            Caller::Admin => None,
            Caller::Org(own) => Some(vec![own.clone()]),
            Caller::Agent | Caller::Build(_) => Some(Vec::new()),
        }
    }
}

/// The hash a token is kept by.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes a token with the given scope and keeps its hash; returns the token, to be shown once.
pub async fn create_token(db: &Db, admin: bool, org: Option<&str>, description: &str) -> Result<String, DbError> {
    let token = new_token()?;
    db.add_token(&token_hash(&token), admin, org, description).await?;
    Ok(token)
}

/// Makes an agent token and keeps its hash; returns the token, to be shown once.
pub async fn create_agent_token(db: &Db, description: &str) -> Result<String, DbError> {
    let token = new_token()?;
    db.add_agent_token(&token_hash(&token), description).await?;
    Ok(token)
}

fn new_token() -> Result<String, DbError> {
    Ok(format!("{TOKEN_PREFIX}{}", crate::ids::random_hex(32).map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?))
}

/// Who presents `token`, if it is one of ours. The lookup is by hash, so comparing takes the
/// same time whatever the token's first wrong digit.
pub async fn caller(db: &Db, token: &str) -> Result<Option<Caller>, DbError> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = token_hash(token);
    if let Some(scope) = db.token_scope(&hash).await? {
        return Ok(Some(match scope {
            TokenScope::Admin => Caller::Admin,
            TokenScope::Org(org) => Caller::Org(org),
            TokenScope::Agent => Caller::Agent,
        }));
    }
    Ok(db.build_token(&hash).await?.map(Caller::Build))
}

/// Makes the token of a build an agent just claimed: it reaches only that build's params, and
/// only until the build ends. Returns the token, for the agent alone.
pub async fn create_build_token(db: &Db, build_id: &str) -> Result<String, DbError> {
    let token = format!("{TOKEN_PREFIX}{}", crate::ids::random_hex(32).map_err(|e| DbError::Sql(sqlx::Error::Io(e)))?);
    db.add_build_token(&token_hash(&token), build_id).await?;
    Ok(token)
}

/// The params of the build whose token this is, in clear, as `GET /api/v1/builds/{id}/params`
/// answers that build's own token; `None` for any other token (or once the build is over).
pub async fn build_params(db: &Db, token: &str) -> Result<Option<ParamMap>, DbError> {
    match caller(db, token).await? {
        Some(Caller::Build(build_id)) => db.build_params(&build_id).await,
        _ => Ok(None),
    }
}
