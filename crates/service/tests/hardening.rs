//! Issue 23, the defects found attacking `doudi serve`, each with its regression test, on SQLite
//! and (when `DOUDI_TEST_POSTGRES_URL` is set) on PostgreSQL: bounded metric labels under odd
//! methods and paths, bounded silences (no panic, at most a year, four-digit years), 413 for any
//! body over the limit on every route, 404 with nothing in it for anything outside the caller's
//! region, the failed-authentication limit before any token check, `Cache-Control: no-store`,
//! `X-Forwarded-For` believed from trusted proxies only (limiter and audit), and signing out
//! ending the session but not the API token.

mod common;
mod signed;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use common::{session_cookie, Fixture, Reply};
use doudi_service::{routes, Role, TrustedProxies};
use serde_json::{json, Value};
use signed::{header, personal_reads};

/// A request from `peer` (as the server's connection sees it), with extra headers.
async fn from_peer(
    fx: &Fixture,
    peer: &str,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::empty()).expect("request");
    let addr: SocketAddr = format!("{peer}:40000").parse().expect("peer");
    req.extensions_mut().insert(ConnectInfo(addr));
    fx.send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_odd_methods_and_paths_leave_the_metrics_bounded() {
    for fx in Fixture::each_store(|_| {}).await {
        let before = fx.api("GET", "/metrics", None, None).await.body.len();
        for i in 0..2000 {
            let req = Request::builder()
                .method(format!("XM{i}").as_str())
                .uri("/healthz")
                .body(Body::empty())
                .expect("request");
            let r = fx.send(req).await;
            assert!(r.status.is_client_error(), "XM{i}: {}", r.status);
        }
        for i in 0..500 {
            let r = fx.api("GET", &format!("/made-up/{i}"), None, None).await;
            assert_eq!(r.status, 404);
        }
        let after = fx.api("GET", "/metrics", None, None).await.body;
        assert!(
            !after.contains("method=\"XM"),
            "an odd method became a label"
        );
        assert!(!after.contains("/made-up/"), "a raw path became a label");
        assert!(after.contains("method=\"other\""), "{after}");
        assert!(after.contains("route=\"unmatched\""), "{after}");
        // A handful of new series (other × two routes, the other tests running meanwhile), not
        // thousands: 2,000 methods grew it by megabytes before.
        assert!(
            after.len() < before + 64 * 1024,
            "/metrics grew from {before} to {} bytes",
            after.len()
        );
        fx.finish().await;
    }
}

async fn silence(fx: &Fixture, body: Value) -> Reply {
    fx.api(
        "POST",
        "/api/silences",
        Some(fx.token(Role::Supervisor)),
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_bounded_to_a_year_and_four_digit_years_and_never_panic() {
    for fx in Fixture::each_store(|_| {}).await {
        let township = fx.own.township.clone();
        for hours in [4_294_967_295_u64, 2_300_000_000, 2_000_000_000, 8785] {
            let r = silence(
                &fx,
                json!({"region": township, "reason": "防汛", "hours": hours}),
            )
            .await;
            // Beyond the document's bound: 400 naming the place (the contract's check).
            assert_eq!(r.status, 400, "hours {hours}: {}", r.body);
            let msg = r.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(msg.contains("/hours"), "{msg}");
        }
        // A whole leap year of hours from a start in a common year is a day too long.
        let r = silence(
            &fx,
            json!({"region": township, "reason": "防汛", "from": "2027-01-01T00:00:00Z", "hours": 8784}),
        )
        .await;
        // Rules the document states only in words are 422 (see tests/contract.rs).
        assert_eq!(r.status, 422, "{}", r.body);
        for (from, until) in [
            ("0000-01-01T00:00:00+14:00", "0000-01-02T00:00:00Z"),
            ("9999-12-31T00:00:00Z", "9999-12-31T23:00:00-08:00"),
        ] {
            let r = silence(
                &fx,
                json!({"region": township, "reason": "防汛", "from": from, "until": until}),
            )
            .await;
            assert_eq!(r.status, 422, "{from} → {until}: {}", r.body);
            assert!(r.body.contains("0001 to 9999"), "{}", r.body);
        }
        let r = silence(
            &fx,
            json!({"region": township, "reason": "防汛", "from": "2026-12-01T00:00:00Z", "until": "2027-12-01T00:00:01Z"}),
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        // Accepted: times stored as the store writes them (UTC, four-digit year), so they compare
        // as times.
        let r = silence(
            &fx,
            json!({"region": township, "reason": "防汛", "from": "2026-12-31T20:00:00-08:00", "hours": 8760}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let s = r.json();
        assert_eq!(s["starts_at"], "2027-01-01T04:00:00.000000Z", "{s}");
        assert_eq!(s["ends_at"], "2028-01-01T04:00:00.000000Z", "{s}");
        let r = silence(
            &fx,
            json!({"region": township, "reason": "防汛", "hours": 48}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        for s in fx.store.silences().await.expect("silences") {
            assert!(
                doudi_store::is_canonical(&s.starts_at) && doudi_store::is_canonical(&s.ends_at),
                "{s:?}"
            );
        }
        // The one active now is active for the store: a warning of the township is silenced.
        let now = doudi_store::ts(&chrono::Utc::now());
        let active = fx
            .store
            .silences()
            .await
            .expect("silences")
            .into_iter()
            .filter(|s| s.starts_at <= now && now < s.ends_at)
            .count();
        assert_eq!(active, 1);
        // The server still answers (no panic dropped a connection above).
        assert_eq!(fx.api("GET", "/healthz", None, None).await.status, 200);
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413_on_every_route() {
    // The push has a limit of its own (`serve.push_max_bytes`, tests/push.rs): set to the same.
    for fx in Fixture::each_store(|c| {
        c.max_body_bytes = 2048;
        c.push_max_bytes = 2048;
    })
    .await
    {
        let big = "x".repeat(4096);
        let mut paths: Vec<(&str, String)> = routes()
            .iter()
            .map(|r| {
                let p = r
                    .path
                    .replace("{id}", "1")
                    .replace("{seq}", "1")
                    .replace("{code}", "341502")
                    .replace("{source}", "civil_registry");
                (r.method, p)
            })
            .collect();
        paths.push(("GET", "/metrics".into()));
        paths.push(("POST", "/no/such/route".into()));
        for (method, path) in &paths {
            for token in [None, Some(fx.token(Role::Supervisor))] {
                let mut b = Request::builder()
                    .method(*method)
                    .uri(path)
                    .header("content-length", big.len().to_string())
                    .header("content-type", "application/x-www-form-urlencoded");
                if let Some(t) = token {
                    b = b.header("authorization", format!("Bearer {t}"));
                }
                let r = fx
                    .send(b.body(Body::from(big.clone())).expect("request"))
                    .await;
                assert_eq!(r.status, 413, "{method} {path}: {}", r.body);
            }
        }
        // A sign-in form without Content-Length (as a streamed body): 413 once read, not 400.
        let form = format!("token={big}");
        let req = Request::builder()
            .method("POST")
            .uri("/sign-in")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("request");
        let r = fx.send(req).await;
        assert_eq!(r.status, 413, "{}", r.body);
        // And a JSON body the same way.
        let req = Request::builder()
            .method("POST")
            .uri("/api/silences")
            .header(
                "authorization",
                format!("Bearer {}", fx.token(Role::Supervisor)),
            )
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"region": "341502001", "reason": big, "hours": 1}).to_string(),
            ))
            .expect("request");
        let r = fx.send(req).await;
        assert_eq!(r.status, 413, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "payload_too_large");
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_outside_the_callers_region_is_404_with_nothing_about_it() {
    for fx in Fixture::each_store(|_| {}).await {
        let officer = fx.token(Role::Officer).to_string();
        let foreign_w = fx.other.warnings[0];
        let foreign_h = fx.other.households[0].clone();
        let missing_w = 9_999_999;
        let leaks = |r: &Reply| {
            r.body.contains(&fx.other.village)
                || r.body.contains(&fx.other.township)
                || r.body.contains("outside")
        };
        // A warning of another county answers exactly as one that does not exist.
        let r = fx
            .api(
                "GET",
                &format!("/api/warnings/{foreign_w}"),
                Some(&officer),
                None,
            )
            .await;
        let none = fx
            .api(
                "GET",
                &format!("/api/warnings/{missing_w}"),
                Some(&officer),
                None,
            )
            .await;
        assert_eq!((r.status.as_u16(), none.status.as_u16()), (404, 404));
        assert!(!leaks(&r), "{}", r.body);
        assert_eq!(
            r.json()["error"]["message"]
                .as_str()
                .map(|m| m.replace(&foreign_w.to_string(), "N")),
            none.json()["error"]["message"]
                .as_str()
                .map(|m| m.replace(&missing_w.to_string(), "N")),
        );
        for (method, path, body) in [
            (
                "POST",
                format!("/api/warnings/{foreign_w}/acknowledge"),
                Some(json!({})),
            ),
            (
                "POST",
                format!("/api/warnings/{foreign_w}/visit"),
                Some(json!({"note": "x"})),
            ),
            (
                "POST",
                format!("/api/warnings/{foreign_w}/resolve"),
                Some(json!({"disposition": "false_alarm", "note": "x"})),
            ),
            ("GET", format!("/api/households/{foreign_h}"), None),
            ("GET", format!("/api/households/{foreign_h}/timeline"), None),
            ("GET", format!("/api/households/{foreign_h}/trace"), None),
            (
                "GET",
                format!("/api/regions/{}/overview", fx.other.township),
                None,
            ),
            (
                "POST",
                format!("/api/review/{}/decide", fx.other.review_seq),
                Some(json!({"reject": true})),
            ),
        ] {
            let r = fx.api(method, &path, Some(&officer), body).await;
            assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
            assert!(
                !r.body.contains(&fx.other.village),
                "{method} {path}: {}",
                r.body
            );
        }
        let r = fx
            .api(
                "GET",
                &format!("/api/households/{foreign_h}"),
                Some(&officer),
                None,
            )
            .await;
        let none = fx
            .api("GET", "/api/households/HNOPE", Some(&officer), None)
            .await;
        assert_eq!(
            r.json()["error"]["message"]
                .as_str()
                .map(|m| m.replace(&foreign_h, "H")),
            none.json()["error"]["message"]
                .as_str()
                .map(|m| m.replace("HNOPE", "H")),
        );
        // A supervisor silencing a household of another county: 404 too.
        let r = silence(
            &fx,
            json!({"household": foreign_h, "reason": "x", "hours": 1}),
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.body);
        // The pages say the same.
        let r = fx
            .page_get(Role::Officer, &format!("/warnings/{foreign_w}"))
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(!leaks(&r), "{}", r.body);
        let trace = format!("/households/{foreign_h}/trace");
        let r = fx.page_get(Role::Officer, &trace).await;
        assert_eq!(r.status, 404);
        assert!(!leaks(&r), "{}", r.body);
        // Probing ids learns nothing: every foreign one looks missing.
        for w in &fx.other.warnings {
            let r = fx
                .api("GET", &format!("/api/warnings/{w}"), Some(&officer), None)
                .await;
            assert_eq!(r.status, 404);
            assert!(!leaks(&r), "{}", r.body);
        }
        // The audit trail is whole (refused moves are still recorded).
        assert!(fx.audit_whole().await);
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_address_is_refused_even_with_a_valid_token() {
    for fx in Fixture::each_store(|c| c.auth_failures_per_minute = 3).await {
        let good = fx.token(Role::Officer).to_string();
        let peer = "192.0.2.10";
        for i in 0..3 {
            let r = from_peer(
                &fx,
                peer,
                "GET",
                "/api/warnings",
                &[("authorization", &format!("Bearer doudi_guess{i}"))],
            )
            .await;
            assert_eq!(r.status, 401, "{}", r.body);
        }
        let bearer = format!("Bearer {good}");
        let r = from_peer(
            &fx,
            peer,
            "GET",
            "/api/warnings",
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(r.status, 429, "a valid token while limited: {}", r.body);
        // Signing in with a valid token: refused too, and no session cookie.
        let mut req = Request::builder()
            .method("POST")
            .uri("/sign-in")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(common::encode_form(&[("token", &good)])))
            .expect("request");
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(
            format!("{peer}:40001").parse().expect("addr"),
        ));
        let r = fx.send(req).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(session_cookie(&r).is_none());
        // A page with a session cookie from that address: refused as well.
        let session = fx.session(&good).await;
        let cookie = format!("doudi_session={session}");
        let r = from_peer(&fx, peer, "GET", "/", &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 429, "{}", r.body);
        // Another address is not limited.
        let r = from_peer(
            &fx,
            "192.0.2.11",
            "GET",
            "/api/warnings",
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_no_store() {
    for fx in Fixture::each_store(|_| {}).await {
        let officer = fx.token(Role::Officer).to_string();
        let w = fx.own.warnings[0];
        let hh = fx.own.households[0].clone();
        let mut replies = vec![
            fx.api("GET", &format!("/api/warnings/{w}"), Some(&officer), None)
                .await,
            fx.api("GET", "/api/warnings", Some(&officer), None).await,
            fx.api(
                "GET",
                &format!("/api/households/{hh}"),
                Some(&officer),
                None,
            )
            .await,
            fx.api("GET", "/api/warnings/9999999", Some(&officer), None)
                .await,
            fx.api("GET", "/api/warnings", None, None).await,
            fx.api("GET", "/healthz", None, None).await,
            fx.page("GET", "/", Some(&officer), None).await,
            fx.page("GET", &format!("/warnings/{w}"), Some(&officer), None)
                .await,
            fx.page("GET", "/sign-in", None, None).await,
            fx.sign_in(&officer).await,
        ];
        replies.push(fx.api("GET", "/no/such/route", None, None).await);
        for r in &replies {
            assert_eq!(
                r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
                Some("no-store"),
                "{} {}",
                r.status,
                r.body.chars().take(200).collect::<String>()
            );
        }
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_trusted_proxies_for_the_limiter_and_the_audit() {
    let proxies = TrustedProxies::parse(&["10.0.0.0/8".to_string()]).expect("proxies");
    for fx in Fixture::each_store(|c| {
        c.auth_failures_per_minute = 2;
        c.trusted_proxies = proxies.clone();
    })
    .await
    {
        let good = format!("Bearer {}", fx.token(Role::Officer));
        let bad = "Bearer doudi_guess";
        let via = |client: &str| vec![("x-forwarded-for", client.to_string())];
        // Two failures of 203.0.113.7 through the proxy: that client is limited, not the proxy's
        // other clients.
        for _ in 0..2 {
            let h = via("203.0.113.7");
            let r = from_peer(
                &fx,
                "10.0.0.5",
                "GET",
                "/api/warnings",
                &[("authorization", bad), (h[0].0, &h[0].1)],
            )
            .await;
            assert_eq!(r.status, 401);
        }
        let r = from_peer(
            &fx,
            "10.0.0.5",
            "GET",
            "/api/warnings",
            &[("authorization", &good), ("x-forwarded-for", "203.0.113.7")],
        )
        .await;
        assert_eq!(r.status, 429, "{}", r.body);
        let r = from_peer(
            &fx,
            "10.0.0.5",
            "GET",
            "/api/warnings",
            &[("authorization", &good), ("x-forwarded-for", "203.0.113.8")],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // A client that is not a proxy cannot dodge the limit by sending its own header.
        for i in 0..2 {
            let r = from_peer(
                &fx,
                "198.51.100.1",
                "GET",
                "/api/warnings",
                &[
                    ("authorization", bad),
                    ("x-forwarded-for", &format!("203.0.113.{}", 100 + i)),
                ],
            )
            .await;
            assert_eq!(r.status, 401);
        }
        let r = from_peer(
            &fx,
            "198.51.100.1",
            "GET",
            "/api/warnings",
            &[
                ("authorization", &good),
                ("x-forwarded-for", "203.0.113.200"),
            ],
        )
        .await;
        assert_eq!(r.status, 429, "{}", r.body);
        // The audit record of a read names the client as the proxy saw it, not what the client
        // says behind it.
        let hh = fx.own.households[0].clone();
        let r = from_peer(
            &fx,
            "10.0.0.5",
            "GET",
            &format!("/api/households/{hh}"),
            &[
                ("authorization", &good),
                ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = from_peer(
            &fx,
            "198.51.100.2",
            "GET",
            &format!("/api/households/{hh}"),
            &[
                ("authorization", &good),
                ("x-forwarded-for", "203.0.113.66"),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let clients: Vec<String> = personal_reads(&fx, 100_000)
            .await
            .iter()
            .filter_map(|d| {
                serde_json::from_str::<Value>(d).ok()?["client"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(clients, vec!["203.0.113.9", "198.51.100.2"]);
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_but_not_the_api_token() {
    for fx in Fixture::each_store(|_| {}).await {
        let token = fx.token(Role::Officer).to_string();
        let r = fx.sign_in(&token).await;
        assert_eq!(r.status, 303);
        let session = session_cookie(&r).expect("a session cookie");
        assert_ne!(
            session, token,
            "the cookie holds a session token, not the API token"
        );
        let set = header(&r, "set-cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("Max-Age="),
            "{set}"
        );
        let r = fx.page_with_session("GET", "/", Some(&session), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // An API token is no session: the cookie must hold one.
        let r = fx.page_with_session("GET", "/", Some(&token), None).await;
        assert_eq!(
            (r.status.as_u16(), r.location()),
            (303, "/sign-in?expired=1")
        );
        // Sign out (with the session's form token).
        let csrf = doudi_service::form_token(&session);
        let r = fx
            .page_with_session(
                "POST",
                "/sign-out",
                Some(&session),
                Some(&[("csrf", &csrf)]),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.location()),
            (303, "/sign-in?signed_out=1")
        );
        // A copy of the cookie no longer works …
        let r = fx.page_with_session("GET", "/", Some(&session), None).await;
        assert_eq!(
            (r.status.as_u16(), r.location()),
            (303, "/sign-in?expired=1")
        );
        // … and the API token, shared with scripts, still does.
        let r = fx.api("GET", "/api/warnings", Some(&token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        // Both ends of the session are in the audit trail, by the officer the token acts for.
        let trail: Vec<(String, String)> = fx
            .store
            .audit_records(1, 100_000)
            .await
            .expect("audit")
            .into_iter()
            .filter(|a| a.action == "signed_in" || a.action == "signed_out")
            .map(|a| (a.actor, a.action))
            .collect();
        assert!(
            trail.ends_with(&[
                ("o-341502001".to_string(), "signed_in".to_string()),
                ("o-341502001".to_string(), "signed_out".to_string())
            ]),
            "{trail:?}"
        );
        // Revoking the API token ends its sessions too.
        let again = session_cookie(&fx.sign_in(&token).await).expect("a new session");
        assert_eq!(
            fx.page_with_session("GET", "/", Some(&again), None)
                .await
                .status,
            200
        );
        let id = fx
            .store
            .token_by_hash(&doudi_service::hash_token(&token))
            .await
            .expect("token")
            .expect("stored")
            .token_id;
        fx.store.revoke_token(id, "test").await.expect("revoke");
        let r = fx.page_with_session("GET", "/", Some(&again), None).await;
        assert_eq!(
            (r.status.as_u16(), r.location()),
            (303, "/sign-in?expired=1")
        );
        fx.finish().await;
    }
}
