//! The authorisation matrix: every route of the table × every role × a resource in the role's
//! own region and one in another region, each asserted allowed or refused — and refused without
//! a token. The expected matrix is written here, independently of the route table; a route the
//! matrix does not list (or a listed route the server lacks) fails the test.

mod common;

use common::{Fixture, Reply, Side};
use doudi_service::{routes, Kind, Role};
use serde_json::{json, Value};

/// What a role may do on a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exp {
    /// Allowed in its own region, refused in another.
    Own,
    /// Allowed everywhere.
    All,
    /// Refused everywhere.
    No,
    /// No token needed.
    Public,
}

use Exp::{All, No, Own, Public};

/// Roles in this order: officer, supervisor, auditor, admin, feeder (of `civil_registry`: its own
/// "region" is its source).
const ROLES: [Role; 5] = [
    Role::Officer,
    Role::Supervisor,
    Role::Auditor,
    Role::Admin,
    Role::Feeder,
];

// A matrix: one route a line, a column a role, aligned (rustfmt would fold the longer lines).
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [Exp; 5])] = &[
    ("GET",  "/healthz",                       [Public, Public, Public, Public, Public]),
    ("GET",  "/readyz",                        [Public, Public, Public, Public, Public]),
    ("GET",  "/api/warnings",                  [Own, Own, All, All, No]),
    ("GET",  "/api/warnings/{id}",             [Own, Own, All, All, No]),
    ("POST", "/api/warnings/{id}/acknowledge", [Own, Own, No, No, No]),
    ("POST", "/api/warnings/{id}/visit",       [Own, Own, No, No, No]),
    ("POST", "/api/warnings/{id}/resolve",     [Own, Own, No, No, No]),
    ("GET",  "/api/households/{id}",           [Own, Own, All, All, No]),
    ("GET",  "/api/households/{id}/timeline",  [Own, Own, All, All, No]),
    ("GET",  "/api/households/{id}/trace",     [Own, Own, All, No, No]),
    ("GET",  "/api/review",                    [All, All, All, All, No]),
    ("POST", "/api/review/{seq}/decide",       [Own, Own, No, No, No]),
    ("GET",  "/api/deadletters",               [No, No, All, All, No]),
    ("POST", "/api/deadletters/replay",        [No, No, No, All, No]),
    ("POST", "/api/feeds/{source}",            [No, No, No, No, Own]),
    ("GET",  "/api/officers",                  [All, All, All, All, No]),
    ("GET",  "/api/silences",                  [All, All, All, All, No]),
    ("POST", "/api/silences",                  [No, Own, No, No, No]),
    ("GET",  "/api/regions/{code}/overview",   [Own, Own, All, All, No]),
    ("GET",  "/sign-in",                       [Public, Public, Public, Public, Public]),
    ("POST", "/sign-in",                       [Public, Public, Public, Public, Public]),
    ("POST", "/sign-out",                      [All, All, All, All, No]),
    ("GET",  "/",                              [All, All, All, All, No]),
    ("GET",  "/warnings/{id}",                 [Own, Own, All, All, No]),
    ("POST", "/warnings/{id}/acknowledge",     [Own, Own, No, No, No]),
    ("POST", "/warnings/{id}/visit",           [Own, Own, No, No, No]),
    ("POST", "/warnings/{id}/resolve",         [Own, Own, No, No, No]),
    ("GET",  "/regions/{code}",                [Own, Own, All, All, No]),
    ("GET",  "/households/{id}/trace",         [Own, Own, All, No, No]),
    ("GET",  "/households/{id}",               [Own, Own, All, All, No]),
    ("GET",  "/review",                        [All, All, All, All, No]),
    ("POST", "/review/{seq}/decide",           [Own, Own, No, No, No]),
    ("GET",  "/deadletters",                   [No, No, All, All, No]),
    ("POST", "/deadletters/replay",            [No, No, No, All, No]),
];

/// The concrete request for a route template, aimed at `side`.
fn uri(path: &str, side: &Side, own: bool) -> String {
    let warning = side.warnings[0].to_string();
    let mut u = path
        .replace("{seq}", &side.review_seq.to_string())
        .replace("{code}", &side.township)
        .replace(
            "{source}",
            if own {
                common::FEEDER_SOURCE
            } else {
                "housing"
            },
        );
    u = if path.starts_with("/api/households") || path.starts_with("/households") {
        u.replace("{id}", &side.households[0])
    } else {
        u.replace("{id}", &warning)
    };
    // A list aimed at another region asks for it explicitly.
    if path == "/api/warnings" && !own {
        u.push_str(&format!("?region={}", side.township));
    }
    u
}

fn api_body(path: &str, side: &Side) -> Option<Value> {
    Some(match path {
        p if p.ends_with("/acknowledge") => json!({"note": "签收"}),
        p if p.ends_with("/visit") => json!({"note": "入户核查：住院治疗中"}),
        p if p.ends_with("/resolve") => {
            json!({"disposition": "false_alarm", "note": "账单已由医保报销"})
        }
        p if p.ends_with("/decide") => json!({"link": side.review_member, "note": "核对户籍"}),
        "/api/silences" => json!({"region": side.township, "reason": "防汛", "hours": 24}),
        "/api/deadletters/replay" => json!({}),
        _ => return None,
    })
}

/// Refused: 401, 403 (a role the route does not admit), 404 (outside the caller's region: as if it
/// did not exist — was 403), or a page's way back to sign-in.
fn refused(kind: Kind, r: &Reply) -> bool {
    r.status.as_u16() == 401
        || r.status.as_u16() == 403
        || r.status.as_u16() == 404
        || (kind == Kind::Page
            && r.status.as_u16() == 303
            && (r.location() == "/sign-in" || r.location().starts_with("/sign-in?expired")))
}

async fn request(
    fx: &Fixture,
    method: &str,
    path: &str,
    kind: Kind,
    token: Option<&str>,
    side: &Side,
    own: bool,
) -> Reply {
    let u = uri(path, side, own);
    match kind {
        Kind::Page if method == "POST" => {
            let csrf = match token {
                Some(t) => fx.csrf(t).await,
                None => String::new(),
            };
            let sign_in_token = token.unwrap_or("nothing");
            let fields: Vec<(&str, &str)> = if path == "/sign-in" {
                vec![("token", sign_in_token)]
            } else {
                vec![
                    ("csrf", csrf.as_str()),
                    ("note", "入户核查：住院治疗中"),
                    ("disposition", "false_alarm"),
                    ("link", side.review_member.as_str()),
                ]
            };
            fx.page(method, &u, token, Some(&fields)).await
        }
        Kind::Page => fx.page(method, &u, token, None).await,
        _ if path == "/api/feeds/{source}" => {
            let mut b = axum::http::Request::builder()
                .method(method)
                .uri(&u)
                .header("content-type", "application/x-ndjson");
            if let Some(t) = token {
                b = b.header("authorization", format!("Bearer {t}"));
            }
            let line = common::death_line(&format!("matrix-{}-{own}", token.map_or(0, str::len)));
            fx.send(b.body(axum::body::Body::from(line)).expect("request"))
                .await
        }
        _ => {
            let body = if method == "POST" {
                api_body(path, side)
            } else {
                None
            };
            fx.api(method, &u, token, body).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_allows_exactly_the_roles_and_regions_in_the_matrix() {
    let fx = Fixture::new().await;
    let table = routes();
    for r in &table {
        assert!(
            MATRIX
                .iter()
                .any(|(m, p, _)| *m == r.method && *p == r.path),
            "route {} {} is not in the authorisation matrix: add it with what each role may do",
            r.method,
            r.path
        );
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (method, path, expected) in MATRIX {
        let Some(route) = table
            .iter()
            .find(|r| r.method == *method && r.path == *path)
        else {
            panic!("the matrix lists {method} {path}, which the server does not serve");
        };
        let kind = route.kind;
        // Without a token: refused, unless public.
        let anonymous = request(&fx, method, path, kind, None, &fx.own, true).await;
        let public = expected.iter().all(|e| *e == Public);
        if public == refused(kind, &anonymous) && *path != "/sign-in" {
            failures.push(format!(
                "{method} {path} without a token: got {} (public: {public})",
                anonymous.status
            ));
        }
        for (role, exp) in ROLES.iter().zip(expected) {
            for (side, own) in [(&fx.own, true), (&fx.other, false)] {
                let token = fx.token(*role).to_string();
                let reply = request(&fx, method, path, kind, Some(&token), side, own).await;
                checked += 1;
                let want_allowed = match exp {
                    Public | All => true,
                    No => false,
                    Own => own,
                };
                let got_refused = refused(kind, &reply);
                if reply.status.is_server_error() {
                    failures.push(format!(
                        "{method} {} as {} ({}): server error {} {}",
                        uri(path, side, own),
                        role.code(),
                        if own { "own region" } else { "other region" },
                        reply.status,
                        reply.body
                    ));
                } else if want_allowed == got_refused {
                    failures.push(format!(
                        "{method} {} as {} ({}): expected {}, got {} {}",
                        uri(path, side, own),
                        role.code(),
                        if own { "own region" } else { "other region" },
                        if want_allowed { "allowed" } else { "refused" },
                        reply.status,
                        reply.body.chars().take(300).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, MATRIX.len() * ROLES.len() * 2);
    // The refused attempts and reads left the audit trail whole.
    let check = fx.store.verify_audit().await.expect("verify");
    assert!(check.first_broken.is_none(), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_of_the_next_township_in_the_same_county_is_refused() {
    let fx = Fixture::new().await;
    let token = common::make_token(
        &fx.store,
        Role::Officer,
        "341502002",
        Some("o-341502002"),
        None,
    )
    .await;
    let w = fx.own.warnings[0];
    let r = fx
        .api("GET", &format!("/api/warnings/{w}"), Some(&token), None)
        .await;
    // 404 with the answer for a warning that does not exist, no village named (was 403).
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error"]["message"], format!("no warning #{w}"));
    assert!(!r.body.contains(&fx.own.village), "{}", r.body);
    let r = fx
        .api(
            "POST",
            &format!("/api/warnings/{w}/acknowledge"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!r.body.contains(&fx.own.village), "{}", r.body);
    let list = fx
        .api("GET", "/api/warnings", Some(&token), None)
        .await
        .json();
    assert_eq!(list["total"], 0, "{list}");
}
