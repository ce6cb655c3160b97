//! Params at rest: org param sets and repositories' own params, each value sealed with its
//! org's data key (made at the org's first param and kept sealed with the server key), and the
//! per-build tokens that read a running build's params.
//!
//! Values go in as plain text and come out as plain text only through [`Db::build_params`];
//! every listing gives names and lengths. Which sets a build gets is [`crate::params`]' rule.

use monkeyci_protocol::ParamMap;
use sqlx::Row;

use super::{Db, DbError, now};
use crate::params::{self, LabelFilter, ParamInfo, ParamOwner, ParamSet};
use crate::secrets::Key;

impl Db {
    /// This database, sealing and opening params with `key` (the server key).
    pub fn with_server_key(mut self, key: Key) -> Db {
        self.server_key = Some(std::sync::Arc::new(key));
        self
    }

    /// Fails (clearly) if the server key does not open the data keys stored: started with
    /// another key than the one the params were stored with.
    pub async fn check_server_key(&self) -> Result<(), DbError> {
        let row = sqlx::query("SELECT org_id, wrapped_key FROM org_keys ORDER BY org_id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            let server = self.server_key.as_deref().ok_or(DbError::NoServerKey)?;
            server.unwrap_key(&row.try_get::<String, _>(1)?, &row.try_get::<String, _>(0)?)?;
        }
        Ok(())
    }

    /// `org`'s data key; made (and kept, sealed) first if `create` and the org has none.
    async fn data_key(&self, org: &str, create: bool) -> Result<Option<Key>, DbError> {
        let server = self.server_key.as_deref().ok_or(DbError::NoServerKey)?;
        let stored = |db: &Db| {
            let pool = db.pool.clone();
            async move {
                let row = sqlx::query("SELECT wrapped_key FROM org_keys WHERE org_id = $1")
                    .bind(org)
                    .fetch_optional(&pool)
                    .await?;
                row.map(|row| row.try_get::<String, _>(0)).transpose()
            }
        };
        if let Some(wrapped) = stored(self).await? {
            return Ok(Some(server.unwrap_key(&wrapped, org)?));
        }
        if !create {
            return Ok(None);
        }
        let fresh = Key::generate()?;
        // Two first params at once: one key wins, and both use it.
        sqlx::query(
            "INSERT INTO org_keys (org_id, wrapped_key, created_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(server.wrap(&fresh, org)?)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let wrapped = stored(self).await?.ok_or_else(|| DbError::Conflict(format!("no data key for org {org:?}")))?;
        Ok(Some(server.unwrap_key(&wrapped, org)?))
    }

    /// Creates or changes the org's param set `name` (its description and filter when given)
    /// and sets `values` in it (others stay).
    pub async fn set_param_set(
        &self,
        org: &str,
        name: &str,
        description: Option<&str>,
        filter: Option<&LabelFilter>,
        values: &ParamMap,
    ) -> Result<(), DbError> {
        let sealed = self.seal_all(org, &ParamOwner::Set(name.to_owned()), values).await?;
        let filter = filter.map(|f| serde_json::to_string(f).unwrap_or_else(|_| "[]".to_owned()));
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO param_sets (org_id, name, description, label_filter, updated_ms) \
             VALUES ($1, $2, COALESCE($3, ''), COALESCE($4, '[]'), $5) \
             ON CONFLICT (org_id, name) DO UPDATE SET description = COALESCE($3, param_sets.description), \
             label_filter = COALESCE($4, param_sets.label_filter), updated_ms = $5",
        )
        .bind(org)
        .bind(name)
        .bind(description)
        .bind(filter)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        upsert_values(&mut tx, org, &ParamOwner::Set(name.to_owned()), sealed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets `values` among the repository's own params (others stay).
    pub async fn set_repo_params(&self, org: &str, repo: &str, values: &ParamMap) -> Result<(), DbError> {
        let owner = ParamOwner::Repo(repo.to_owned());
        let sealed = self.seal_all(org, &owner, values).await?;
        let mut tx = self.pool.begin().await?;
        upsert_values(&mut tx, org, &owner, sealed).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn seal_all(
        &self,
        org: &str,
        owner: &ParamOwner,
        values: &ParamMap,
    ) -> Result<Vec<(String, String, i64)>, DbError> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.data_key(org, true).await?.ok_or(DbError::NoServerKey)?;
        values
            .iter()
            .map(|(name, value)| {
                let sealed = key.seal(value.as_bytes(), &place(org, owner, name))?;
                Ok((name.clone(), sealed, i64::try_from(value.len()).unwrap_or(i64::MAX)))
            })
            .collect()
    }

    /// The org's param sets, by name, with their params' names (never their values).
    pub async fn param_sets(&self, org: &str) -> Result<Vec<ParamSet>, DbError> {
        let rows =
            sqlx::query("SELECT name, description, label_filter FROM param_sets WHERE org_id = $1 ORDER BY name")
                .bind(org)
                .fetch_all(&self.pool)
                .await?;
        let mut sets = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get(0)?;
            let filter: String = row.try_get(2)?;
            let label_filter = serde_json::from_str(&filter)
                .map_err(|e| DbError::Corrupt { what: "param set label filter", detail: e.to_string() })?;
            let params = self.param_infos(org, &ParamOwner::Set(name.clone())).await?;
            sets.push(ParamSet { org: org.to_owned(), name, description: row.try_get(1)?, label_filter, params });
        }
        Ok(sets)
    }

    /// The names (and lengths) of `owner`'s params, by name.
    pub async fn param_infos(&self, org: &str, owner: &ParamOwner) -> Result<Vec<ParamInfo>, DbError> {
        let rows = sqlx::query(
            "SELECT name, value_len, updated_ms FROM param_values WHERE org_id = $1 AND owner = $2 ORDER BY name",
        )
        .bind(org)
        .bind(owner.key())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(ParamInfo { name: row.try_get(0)?, length: row.try_get(1)?, updated_ms: row.try_get(2)? }))
            .collect()
    }

    /// Removes the org's param set `name` with its params; `false` if there was none.
    pub async fn delete_param_set(&self, org: &str, name: &str) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM param_values WHERE org_id = $1 AND owner = $2")
            .bind(org)
            .bind(ParamOwner::Set(name.to_owned()).key())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM param_sets WHERE org_id = $1 AND name = $2")
            .bind(org)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes one param of `owner`; `false` if there was none.
    pub async fn delete_param(&self, org: &str, owner: &ParamOwner, name: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM param_values WHERE org_id = $1 AND owner = $2 AND name = $3")
            .bind(org)
            .bind(owner.key())
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The params of build `build_id`, in clear ([`params::resolve`]); `None` if there is no
    /// such build.
    pub async fn build_params(&self, build_id: &str) -> Result<Option<ParamMap>, DbError> {
        let Some(build) = self.build(build_id).await? else { return Ok(None) };
        let labels = match self.repo(&build.org, &build.repo).await? {
            Some((repo, _)) => repo.labels,
            None => Vec::new(),
        };
        let rows = sqlx::query(
            "SELECT s.name, s.label_filter, v.name, v.sealed FROM param_sets s \
             JOIN param_values v ON v.org_id = s.org_id AND v.owner = 'set:' || s.name \
             WHERE s.org_id = $1 ORDER BY s.name, v.name",
        )
        .bind(&build.org)
        .fetch_all(&self.pool)
        .await?;
        let repo_rows = sqlx::query("SELECT name, sealed FROM param_values WHERE org_id = $1 AND owner = $2")
            .bind(&build.org)
            .bind(ParamOwner::Repo(build.repo.clone()).key())
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() && repo_rows.is_empty() {
            return Ok(Some(ParamMap::new()));
        }
        let key = self.data_key(&build.org, false).await?.ok_or_else(|| DbError::Corrupt {
            what: "params",
            detail: format!("org {:?} has sealed params and no data key", build.org),
        })?;
        let open = |owner: &ParamOwner, name: &str, sealed: &str| -> Result<String, DbError> {
            let bytes = key.open(sealed, &place(&build.org, owner, name))?;
            String::from_utf8(bytes).map_err(|e| DbError::Corrupt { what: "param value", detail: e.to_string() })
        };
        let mut sets: Vec<(String, LabelFilter, ParamMap)> = Vec::new();
        for row in &rows {
            let set: String = row.try_get(0)?;
            let name: String = row.try_get(2)?;
            let value = open(&ParamOwner::Set(set.clone()), &name, &row.try_get::<String, _>(3)?)?;
            match sets.last_mut() {
                Some((last, _, values)) if *last == set => {
                    values.insert(name, value);
                }
                _ => {
                    let filter: String = row.try_get(1)?;
                    let filter = serde_json::from_str(&filter)
                        .map_err(|e| DbError::Corrupt { what: "param set label filter", detail: e.to_string() })?;
                    sets.push((set, filter, ParamMap::from([(name, value)])));
                }
            }
        }
        let owner = ParamOwner::Repo(build.repo.clone());
        let mut repo = ParamMap::new();
        for row in &repo_rows {
            let name: String = row.try_get(0)?;
            let value = open(&owner, &name, &row.try_get::<String, _>(1)?)?;
            repo.insert(name, value);
        }
        Ok(Some(params::resolve(&labels, sets, repo)))
    }

    // ---- build tokens ----

    /// Keeps the hash of a token reaching only `build_id`.
    pub async fn add_build_token(&self, hash: &str, build_id: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO build_tokens (hash, build_id, created_ms) VALUES ($1, $2, $3)")
            .bind(hash)
            .bind(build_id)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The build the token with this hash reaches: while the build runs, in the claim the
    /// token was made for (a build handed back to the queue and claimed again gets a new
    /// token, and the old one reaches nothing).
    pub async fn build_token(&self, hash: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT b.id FROM build_tokens t JOIN builds b ON b.id = t.build_id \
             WHERE t.hash = $1 AND b.status = 'running' AND t.created_ms >= b.started_ms",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| row.try_get(0)).transpose().map_err(DbError::from)
    }

    /// Forgets the tokens of `build_id` (it is over).
    pub async fn drop_build_tokens(&self, build_id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM build_tokens WHERE build_id = $1").bind(build_id).execute(&self.pool).await?;
        Ok(())
    }
}

/// Where a value is sealed (its associated data): its org, owner and name.
fn place(org: &str, owner: &ParamOwner, name: &str) -> String {
    format!("param {org}/{}/{name}", owner.key())
}

async fn upsert_values(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &str,
    owner: &ParamOwner,
    sealed: Vec<(String, String, i64)>,
) -> Result<(), DbError> {
    let now = now();
    for (name, sealed, len) in sealed {
        sqlx::query(
            "INSERT INTO param_values (org_id, owner, name, sealed, value_len, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, owner, name) DO UPDATE SET \
             sealed = $4, value_len = $5, updated_ms = $6",
        )
        .bind(org)
        .bind(owner.key())
        .bind(&name)
        .bind(&sealed)
        .bind(len)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{NewBuild, NewRepo};

    async fn db() -> (tempfile::TempDir, Db) {
        let (dir, db) = crate::db::testing::acme_with(&[]).await;
        for (name, labels) in [("web", vec!["env=prod".to_owned()]), ("lib", vec![])] {
            db.create_repo(&NewRepo { labels, ..crate::db::testing::repo(name) }).await.unwrap();
        }
        (dir, db)
    }

    fn build(repo: &str) -> NewBuild {
        NewBuild {
            org: "acme".into(),
            repo: repo.into(),
            source: "api".into(),
            trigger: "manual".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_build_gets_matching_sets_then_its_repository_params_and_nothing_is_stored_in_clear() {
        let (dir, db) = db().await;
        let prod: LabelFilter = serde_json::from_str(r#"[[{"label":"env","value":"prod"}]]"#).unwrap();
        let values = |pairs: &[(&str, &str)]| -> ParamMap {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        db.set_param_set("acme", "prod", Some("deploys"), Some(&prod), &values(&[("DEPLOY", "s3cr3t-prod")]))
            .await
            .unwrap();
        db.set_param_set("acme", "all", None, None, &values(&[("SHARED", "shared-v4lue")])).await.unwrap();
        db.set_repo_params("acme", "lib", &values(&[("SHARED", "lib-0wn")])).await.unwrap();
        let web = db.queue_build(&build("web")).await.unwrap();
        let lib = db.queue_build(&build("lib")).await.unwrap();
        assert_eq!(
            db.build_params(&web.id).await.unwrap().unwrap(),
            values(&[("DEPLOY", "s3cr3t-prod"), ("SHARED", "shared-v4lue")])
        );
        assert_eq!(db.build_params(&lib.id).await.unwrap().unwrap(), values(&[("SHARED", "lib-0wn")]));
        let sets = db.param_sets("acme").await.unwrap();
        assert_eq!(sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["all", "prod"]);
        assert_eq!(sets[1].params[0].length, 11);
        assert_eq!(sets[1].description, "deploys");
        // Changing a value keeps the filter and description.
        db.set_param_set("acme", "prod", None, None, &values(&[("DEPLOY", "n3w-value")])).await.unwrap();
        let sets = db.param_sets("acme").await.unwrap();
        assert_eq!((sets[1].label_filter.clone(), sets[1].description.as_str()), (prod, "deploys"));
        db.close().await;
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for value in ["s3cr3t-prod", "shared-v4lue", "lib-0wn", "n3w-value"] {
                assert!(!text.contains(value), "{value} in clear");
            }
        }
    }

    #[tokio::test]
    async fn another_server_key_is_refused_at_the_check() {
        let (dir, db) = db().await;
        db.set_repo_params("acme", "lib", &ParamMap::from([("A".to_owned(), "value".to_owned())])).await.unwrap();
        db.check_server_key().await.unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let other = Db::open(&url).await.unwrap().with_server_key(Key::generate().unwrap());
        let err = other.check_server_key().await.unwrap_err();
        assert!(monkeyci_protocol::error_chain(&err).contains("server key is not the one"), "{err}");
        let id = other.queue_build(&build("lib")).await.unwrap().id;
        assert!(other.build_params(&id).await.is_err());
    }

    #[tokio::test]
    async fn a_build_token_reaches_its_build_in_its_claim_until_it_ends() {
        let (_dir, db) = db().await;
        let id = db.queue_build(&build("lib")).await.unwrap().id;
        db.add_build_token("queued", &id).await.unwrap();
        assert_eq!(db.build_token("queued").await.unwrap(), None, "a queued build has no token yet");
        db.claim_build("a1").await.unwrap().unwrap();
        db.add_build_token("h0", &id).await.unwrap();
        // Handed back to the queue (its agent stopped) and claimed again: only the new claim's
        // token works.
        db.requeue_agent_builds("a1").await.unwrap();
        assert_eq!(db.build_token("h0").await.unwrap(), None);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        db.claim_build("a2").await.unwrap().unwrap();
        db.add_build_token("h1", &id).await.unwrap();
        assert_eq!(db.build_token("h1").await.unwrap().as_deref(), Some(id.as_str()));
        assert_eq!(db.build_token("h0").await.unwrap(), None, "the first claim's token");
        assert_eq!(db.build_token("h2").await.unwrap(), None);
        db.finish_build(&id, crate::model::Status::Success, None).await.unwrap();
        assert_eq!(db.build_token("h1").await.unwrap(), None, "refused once the build is over");
    }
}
