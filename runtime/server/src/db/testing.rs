//! What the server's unit tests start from: a fresh SQLite database (with a server key) holding
//! the org `acme` and its repositories, and builds to queue in them.

use tempfile::TempDir;

use super::{Db, NewBuild, NewRepo};

/// A fresh SQLite database in a temporary directory, with a server key, the org `acme` and
/// its repositories `names` (cloned from nowhere, main branch `main`).
pub(crate) async fn acme_with(names: &[&str]) -> (TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = Db::open(&url).await.unwrap().with_server_key(crate::secrets::Key::generate().unwrap());
    db.create_org("acme").await.unwrap();
    for name in names {
        db.create_repo(&repo(name)).await.unwrap();
    }
    (dir, db)
}

/// The repository `acme/name`, as `acme_with` adds it.
pub(crate) fn repo(name: &str) -> NewRepo {
    NewRepo {
        org: "acme".into(),
        name: name.into(),
        url: "file:///x".into(),
        main_branch: "main".into(),
        labels: Vec::new(),
        webhook_secret: None,
        retry_lost: false,
    }
}

/// A build of `acme/repo` triggered through the API.
pub(crate) fn build(repo: &str) -> NewBuild {
    NewBuild {
        org: "acme".into(),
        repo: repo.into(),
        source: "api".into(),
        trigger: "manual".into(),
        ..NewBuild::default()
    }
}
