//! What the unit tests of the store share: a scratch SQLite store and an officer's token.

use crate::{NewToken, Store};

/// A new SQLite store in its own temporary folder (kept while the folder is).
pub(crate) async fn scratch() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    (dir, store)
}

/// A scratch store (see [`scratch`]) with one officer's token (`o-1` of township 341502001) of
/// hash `hash`, created by `cli:root`, and the token's id.
pub(crate) async fn scratch_with_officer_token(hash: &str) -> (tempfile::TempDir, Store, i64) {
    let (dir, store) = scratch().await;
    let id = store
        .create_token(&NewToken {
            token_hash: hash,
            role: "officer",
            region_code: "341502001",
            officer_id: Some("o-1"),
            label: "",
            created_by: "cli:root",
            expires_at: None,
            feed_source: None,
        })
        .await
        .unwrap();
    (dir, store, id)
}
