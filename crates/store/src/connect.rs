//! Connecting to PostgreSQL, over TLS where the URL asks for it (rustls; libpq's parameters):
//!
//! - `sslmode`: `disable`, `allow`, `prefer` (the default: TLS when the server offers it,
//!   certificate unchecked), `require` (TLS or no connection; certificate unchecked unless
//!   `sslrootcert` is given, which makes it `verify-ca`, as in libpq), `verify-ca` (the server's
//!   certificate chains to a trusted CA), `verify-full` (that, and it names the host connected to);
//! - `sslrootcert`: the PEM file of the CA(s) to trust, added to the public roots (webpki);
//! - `sslcert` and `sslkey`: a client certificate and its key (PEM, unencrypted), for servers
//!   whose `pg_hba.conf` says `cert` or `clientcert=verify-full`.
//!
//! A password may come apart from the URL (from a file, so that it is in neither the URL nor a
//! command line); giving it in both places is an error. Files named by the URL are checked before
//! connecting, so that a wrong path is named as such, not as a failed handshake.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::PgPool;

use crate::{redact_url, StoreError};

/// Connections per pool on PostgreSQL (a worker's batches, people's commands, reads).
const PG_MAX_CONNECTIONS: u32 = 8;

pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The pool of a PostgreSQL store.
pub(crate) async fn pg_pool(url: &str, password: Option<&str>) -> Result<PgPool, StoreError> {
    let options = pg_options(url, password)?;
    PgPoolOptions::new()
        .max_connections(PG_MAX_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Open {
            url: redact_url(url),
            source: e,
        })
}

/// The connection options of a `postgres://` URL, its TLS files checked; `password` given apart.
pub fn pg_options(url: &str, password: Option<&str>) -> Result<PgConnectOptions, StoreError> {
    let bad = |message: String| StoreError::BadUrl {
        url: redact_url(url),
        message,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut files: Vec<(&str, String)> = Vec::new();
    let mut mode = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" | "ssl-mode" => {
                if !SSL_MODES.contains(&value.as_ref()) {
                    return Err(bad(format!(
                        "sslmode={value} is not one of {}",
                        SSL_MODES.join(", ")
                    )));
                }
                mode = Some(value.into_owned());
            }
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => files.push(("sslrootcert", value.into())),
            "sslcert" | "ssl-cert" => files.push(("sslcert", value.into())),
            "sslkey" | "ssl-key" => files.push(("sslkey", value.into())),
            "password" if password.is_some() => {
                return Err(bad(
                    "the password is given both in the URL and apart: keep one".into(),
                ))
            }
            _ => {}
        }
    }
    for (param, path) in &files {
        if let Err(e) = std::fs::File::open(path) {
            return Err(bad(format!("{param}={path} cannot be read: {e}")));
        }
    }
    let has = |param: &str| files.iter().any(|(p, _)| *p == param);
    if has("sslcert") != has("sslkey") {
        return Err(bad(
            "a client certificate needs both sslcert and sslkey (PEM files)".into(),
        ));
    }
    let mut options = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
    if mode.as_deref() == Some("require") && has("sslrootcert") {
        // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca".
        options = options.ssl_mode(PgSslMode::VerifyCa);
    }
    if let Some(password) = password {
        if parsed.password().is_some() {
            return Err(bad(
                "the password is given both in the URL and apart: keep one".into(),
            ));
        }
        options = options.password(password);
    }
    Ok(options)
}

/// The values of `sslmode`, as libpq has them.
const SSL_MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_sslmode_or_a_missing_certificate_file_is_named() {
        let e = pg_options("postgres://u@h/db?sslmode=verify", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=verify is not one of"), "{e}");
        let e = pg_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sslrootcert=/nonexistent/ca.crt cannot be read"),
            "{e}"
        );
    }

    /// A URL with `sslmode=require` and `parameter` naming a file `name` (of placeholder
    /// content) in a temporary folder, kept while the folder is.
    fn require_with_file(parameter: &str, name: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, "x").unwrap();
        let url = format!(
            "postgres://u@h/db?sslmode=require&{parameter}={}",
            path.display()
        );
        (dir, url)
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let (_dir, url) = require_with_file("sslcert", "c.crt");
        let e = pg_options(&url, None).unwrap_err().to_string();
        assert!(e.contains("both sslcert and sslkey"), "{e}");
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let (_dir, url) = require_with_file("sslrootcert", "ca.crt");
        assert!(matches!(
            pg_options(&url, None).unwrap().get_ssl_mode(),
            PgSslMode::VerifyCa
        ));
        assert!(matches!(
            pg_options("postgres://u@h/db?sslmode=require", None)
                .unwrap()
                .get_ssl_mode(),
            PgSslMode::Require
        ));
    }

    #[test]
    fn a_password_apart_is_refused_beside_one_in_the_url_and_never_echoed() {
        let e = pg_options("postgres://u:inline-pw@h/db", Some("apart"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both in the URL and apart"), "{e}");
        assert!(!e.contains("inline-pw"), "{e}");
        assert!(pg_options("postgres://u@h/db", Some("apart")).is_ok());
    }
}
