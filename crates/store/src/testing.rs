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

/// The store with one officer's token (`o-1` of township 341502001) of hash `hash`, created by
/// `cli:root`; its id.
pub(crate) async fn officer_token(store: &Store, hash: &str) -> i64 {
    store
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
        .unwrap()
}
