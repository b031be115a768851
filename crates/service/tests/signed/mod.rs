//! A signed-in person's page requests, one line each: the fixture's `page` with the person's API
//! token, and the session's form token put first in every form posted with [`Signed::post`].

// Each test file uses some of these.
#![allow(dead_code)]

use crate::common::{Fixture, Reply};

/// The pages as the holder of one API token opens them (in the fixture's session for it).
pub struct Signed<'a> {
    fx: &'a Fixture,
    token: String,
    /// The session's form token.
    pub csrf: String,
}

impl<'a> Signed<'a> {
    /// Sign in with `token` (once per token: the fixture keeps the session).
    pub async fn new(fx: &'a Fixture, token: &str) -> Signed<'a> {
        Signed {
            fx,
            token: token.to_string(),
            csrf: fx.csrf(token).await,
        }
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> Reply {
        self.fx.page("GET", uri, Some(&self.token), None).await
    }

    /// `POST uri` of a form holding the form token, then `fields`.
    pub async fn post(&self, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.form(uri, &form).await
    }

    /// `POST uri` of a form of `fields` only (a forged or stale form token is the test's own).
    pub async fn form(&self, uri: &str, fields: &[(&str, &str)]) -> Reply {
        self.fx
            .page("POST", uri, Some(&self.token), Some(fields))
            .await
    }
}

/// The header `name` of an answer as text (`""` when absent or not text).
pub fn header<'r>(r: &'r Reply, name: &str) -> &'r str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The details of the audit trail's reads of personal data, among its first `limit` records.
pub async fn personal_reads(fx: &Fixture, limit: i64) -> Vec<String> {
    fx.store
        .audit_records(1, limit)
        .await
        .expect("audit")
        .into_iter()
        .filter(|a| a.action == "read_personal_data")
        .map(|a| a.detail)
        .collect()
}
