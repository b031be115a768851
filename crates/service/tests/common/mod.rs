//! A small store for the service's tests, built through the real pipeline: two regions — township
//! 341502001 ("own": the officer's township, inside the supervisor's county 341502) and county
//! 341503 ("other": outside both) — each with warnings, a record in the identity review queue
//! (one person enrolled in two households), and a dead letter; an officer directory; one token per
//! role. Requests go through the whole application in process (`tower::ServiceExt::oneshot`).
//!
//! On SQLite ([`Fixture::new`]; on PostgreSQL with `DOUDI_TEST_SERVICE_STORE=postgres`), or on
//! each store ([`Fixture::each_store`]): SQLite, and a fresh PostgreSQL database when
//! `DOUDI_TEST_POSTGRES_URL` is set (otherwise a `skipped:` line is printed). Pages are requested with a sign-in session opened for an API token
//! ([`Fixture::session`]), as a browser holds one.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::NaiveDate;
use doudi_model::IdNumber;
use doudi_service::{AppState, Role, ServiceConfig};
use doudi_store::{NewToken, OfficerRow, Store};
use doudi_warnings::routing::{Channels, Directory, Officer, Role as OfficerRole};
use serde_json::{json, Value};
use tower::ServiceExt;

/// A person of the fixture's register.
pub struct Person {
    pub id_number: String,
    pub name: &'static str,
    pub birth: NaiveDate,
}

fn person(county: &str, name: &'static str, y: i32, m: u32, d: u32, seq: u16) -> Person {
    let birth = NaiveDate::from_ymd_opt(y, m, d).expect("date");
    Person {
        id_number: IdNumber::from_parts(county, birth, seq)
            .expect("valid id")
            .expose()
            .to_string(),
        name,
        birth,
    }
}

fn household(id: &str, region: &str, p: &Person) -> Value {
    json!({
        "household_id": id, "region_code": region, "address": format!("大塘村{id}号"),
        "category": "tekun", "area": "rural", "monthly_benefit_fen": 117200, "enrolled_on": "2023-05-01",
        "members": [{"member_id": format!("{id}-1"), "id_number": p.id_number, "name": p.name,
            "sex": "female", "birth_date": p.birth.to_string(), "relation": "head", "work_capacity": "none"}]
    })
}

fn illness(event_id: &str, p: &Person, region: &str) -> Value {
    json!({
        "event_id": event_id, "source": "health_insurance", "kind": "serious_illness_diagnosed",
        "occurred_at": "2026-02-12T10:05:00+08:00",
        "subject": {"id_number": p.id_number, "name": p.name, "birth_date": p.birth.to_string(),
            "sex": "female", "region_code": region},
        "data": {"diagnosis": "C34.9", "description": "肺恶性肿瘤", "diagnosed_on": "2026-02-12"}
    })
}

/// What lies in one region of the fixture.
#[derive(Clone, Debug)]
pub struct Side {
    /// A region code inside it (a township).
    pub township: String,
    /// Village code of its households.
    pub village: String,
    pub warnings: Vec<i64>,
    pub households: Vec<String>,
    pub review_seq: i64,
    /// A member among the review item's candidates.
    pub review_member: String,
}

/// Which database a fixture's store is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

// The PostgreSQL test database, the same as the end-to-end tests' (one copy, included by path).
#[path = "../../../../tests/common/pg.rs"]
mod pg;
pub use pg::PgDatabase;

/// A fresh database on the PostgreSQL test server, dropped (with its connections) at the end;
/// `None` (with a printed line) without `DOUDI_TEST_POSTGRES_URL`.
fn pg_database() -> Option<PgDatabase> {
    let Ok(server) = std::env::var("DOUDI_TEST_POSTGRES_URL") else {
        println!("skipped: DOUDI_TEST_POSTGRES_URL not set (the PostgreSQL half of this test)");
        return None;
    };
    Some(PgDatabase::create(&server, "svc"))
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    /// The PostgreSQL database (dropped after the store is closed).
    pub pg: Option<PgDatabase>,
    /// Sessions opened for API tokens (token → session token).
    sessions: Mutex<HashMap<String, String>>,
    pub store: Store,
    pub state: AppState,
    pub app: Router,
    /// One token per role (officer o-341502001, supervisor s-341502, auditor, admin).
    pub tokens: HashMap<Role, String>,
    pub own: Side,
    pub other: Side,
    /// Every person of the register (for checks that personal data stays masked).
    pub people: Vec<Person>,
}

fn officer(id: &str, role: OfficerRole, region: &str) -> Officer {
    Officer {
        officer_id: id.into(),
        name: format!("officer {id}"),
        role,
        region: doudi_model::RegionCode::parse(region).expect("region"),
        channels: Channels {
            phone: Some("13800138000".into()),
            ..Channels::default()
        },
        substitute: None,
        on_duty: true,
    }
}

impl Fixture {
    pub async fn new() -> Fixture {
        Fixture::with_config(|_| {}).await
    }

    /// On SQLite, or on PostgreSQL when `DOUDI_TEST_SERVICE_STORE=postgres` (and
    /// `DOUDI_TEST_POSTGRES_URL`) is set: the whole service suite then runs on PostgreSQL.
    pub async fn with_config(tune: impl FnOnce(&mut ServiceConfig)) -> Fixture {
        let backend = match std::env::var("DOUDI_TEST_SERVICE_STORE").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        };
        Fixture::on(backend, tune).await.expect(
            "DOUDI_TEST_SERVICE_STORE=postgres needs DOUDI_TEST_POSTGRES_URL (the test server)",
        )
    }

    /// A fixture on SQLite, and one on PostgreSQL when `DOUDI_TEST_POSTGRES_URL` is set.
    pub async fn each_store(tune: impl Fn(&mut ServiceConfig)) -> Vec<Fixture> {
        let mut out = Vec::new();
        for b in [Backend::Sqlite, Backend::Postgres] {
            if let Some(fx) = Fixture::on(b, &tune).await {
                out.push(fx);
            }
        }
        out
    }

    /// A fixture on `backend` (`None`: PostgreSQL asked for but not configured).
    pub async fn on(backend: Backend, tune: impl FnOnce(&mut ServiceConfig)) -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(pg_database()?),
        };
        let people = vec![
            person("341502", "陈桂兰", 1949, 1, 27, 46),
            person("341502", "李秀英", 1950, 3, 14, 22),
            person("341502", "王淑珍", 1948, 7, 2, 64),
            person("341503", "张玉梅", 1951, 9, 30, 8),
            person("341503", "刘凤英", 1947, 11, 11, 82),
            person("341503", "赵兰芳", 1946, 5, 19, 36),
        ];
        let (own_v, other_v) = ("341502001003", "341503001002");
        let register = [
            household("HA1", own_v, &people[0]),
            household("HA2", own_v, &people[1]),
            household("HR1", own_v, &people[2]),
            household("HR2", own_v, &people[2]),
            household("HC1", other_v, &people[3]),
            household("HC2", other_v, &people[4]),
            household("HS1", other_v, &people[5]),
            household("HS2", other_v, &people[5]),
        ];
        let feeds = dir.path().join("feeds/health_insurance");
        std::fs::create_dir_all(&feeds).expect("feeds dir");
        let events = [
            illness("YB-1", &people[0], own_v),
            illness("YB-2", &people[1], own_v),
            illness("YB-3", &people[2], own_v),
            illness("YB-4", &people[3], other_v),
            illness("YB-5", &people[4], other_v),
            illness("YB-6", &people[5], other_v),
        ];
        let mut text: String = events.iter().map(|e| format!("{e}\n")).collect();
        text.push_str("this line is not JSON\n");
        std::fs::write(feeds.join("2026-02.jsonl"), text).expect("write feed");

        let url = match &pg {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("doudi.db").display()),
        };
        let store = Store::open(&url).await.expect("open store");
        let households: Vec<doudi_model::Household> = register
            .iter()
            .map(|h| serde_json::from_value(h.clone()).expect("household"))
            .collect();
        store
            .import_register(&households, "register.jsonl", true)
            .await
            .expect("import");
        let officers = vec![
            officer("o-341502001", OfficerRole::Officer, "341502001"),
            officer("o-341502002", OfficerRole::Officer, "341502002"),
            officer("s-341502", OfficerRole::Supervisor, "341502"),
            officer("o-341503001", OfficerRole::Officer, "341503001"),
            officer("s-341503", OfficerRole::Supervisor, "341503"),
        ];
        let rows: Vec<OfficerRow> = officers
            .iter()
            .map(|o| OfficerRow {
                officer_id: o.officer_id.clone(),
                role: o.role.code().into(),
                region_code: o.region.as_str().into(),
                record: serde_json::to_string(o).expect("officer"),
            })
            .collect();
        store.import_officers(&rows).await.expect("officers");
        // Names for the own side's regions (the other side's stay codes: the pages fall back).
        let names: Vec<doudi_store::RegionName> = [
            ("341502", "金安区"),
            ("341502001", "东河口镇"),
            (own_v, "大塘村"),
        ]
        .into_iter()
        .map(|(code, name)| doudi_store::RegionName {
            code: code.into(),
            name: name.into(),
        })
        .collect();
        store
            .import_region_names(&names, "regions.csv")
            .await
            .expect("region names");
        let rules = doudi_risk::RuleSet::builtin();
        let engine = doudi_pipeline::Engine::new(
            rules.clone(),
            doudi_model::ParseLimits::default(),
            store.load_register().await.expect("register"),
        )
        .with_directory(Directory::new(officers).expect("directory"));
        let opts = doudi_pipeline::RunOptions {
            feeds_dir: dir.path().join("feeds"),
            batch_size: 100,
            channel_batches: 1,
            once: true,
            poll_interval: Duration::from_millis(50),
            invalid: Default::default(),
        };
        doudi_pipeline::run_files(
            &store,
            Arc::new(engine),
            &opts,
            &(),
            doudi_pipeline::driver::CancellationToken::new(),
        )
        .await
        .expect("run");

        let mut tokens = HashMap::new();
        for (role, region, officer) in [
            (Role::Officer, "341502001", Some("o-341502001")),
            (Role::Supervisor, "341502", Some("s-341502")),
            (Role::Auditor, "34", None),
            (Role::Admin, "34", None),
        ] {
            tokens.insert(role, make_token(&store, role, region, officer, None).await);
        }
        tokens.insert(Role::Feeder, make_feeder_token(&store, FEEDER_SOURCE).await);
        let side = |township: &str, village: &str, hh: &[&str]| Side {
            township: township.into(),
            village: village.into(),
            warnings: Vec::new(),
            households: hh.iter().map(|s| s.to_string()).collect(),
            review_seq: 0,
            review_member: String::new(),
        };
        let mut own = side("341502001", own_v, &["HA1", "HA2"]);
        let mut other = side("341503001", other_v, &["HC1", "HC2"]);
        for w in store.open_warnings(100, None).await.expect("warnings") {
            match w.region_code.as_str() {
                r if r == own_v => own.warnings.push(w.warning_id),
                r if r == other_v => other.warnings.push(w.warning_id),
                _ => {}
            }
        }
        own.warnings.sort();
        other.warnings.sort();
        assert!(
            own.warnings.len() >= 2 && other.warnings.len() >= 2,
            "the fixture needs two warnings a side: {own:?} {other:?}"
        );
        for item in store.pending_reviews(100).await.expect("review queue") {
            let member = item
                .evidence
                .candidate_members()
                .next()
                .map(|(_, m)| m)
                .unwrap_or("")
                .to_string();
            if member.starts_with("HR") {
                own.review_seq = item.seq;
                own.review_member = member;
            } else if member.starts_with("HS") {
                other.review_seq = item.seq;
                other.review_member = member;
            }
        }
        assert!(
            own.review_seq > 0 && other.review_seq > 0,
            "the fixture needs a review item a side"
        );
        let mut config = ServiceConfig::with_rules(rules);
        config.feeds_dir = dir.path().join("feeds");
        tune(&mut config);
        let state = AppState::new(store.clone(), config);
        let app = doudi_service::app(state.clone());
        Some(Fixture {
            dir,
            backend,
            pg,
            sessions: Mutex::new(HashMap::new()),
            store,
            state,
            app,
            tokens,
            own,
            other,
            people,
        })
    }

    pub fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    /// Close the store (before its PostgreSQL database is dropped).
    pub async fn finish(self) {
        self.store.close().await;
    }

    /// A session opened for API token `token` by signing in (once per token), as a browser holds
    /// it; a token that cannot sign in is returned as is (a cookie the server will refuse).
    pub async fn session(&self, token: &str) -> String {
        if let Some(s) = self.sessions.lock().expect("sessions").get(token) {
            return s.clone();
        }
        let r = self.sign_in(token).await;
        let Some(session) = session_cookie(&r) else {
            return token.to_string();
        };
        self.sessions
            .lock()
            .expect("sessions")
            .insert(token.to_string(), session.clone());
        session
    }

    /// `POST /sign-in` with `token`.
    pub async fn sign_in(&self, token: &str) -> Reply {
        let req = Request::builder()
            .method("POST")
            .uri("/sign-in")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(encode_form(&[("token", token)])))
            .expect("request");
        self.send(req).await
    }

    /// The form token of the session opened for `token`.
    pub async fn csrf(&self, token: &str) -> String {
        doudi_service::form_token(&self.session(token).await)
    }

    /// Record what the escalation tick does to a warning nobody acknowledged: sent `steps` up the
    /// chain (to the county's supervisor), the last step at `at`.
    pub async fn escalate(&self, warning_id: i64, steps: i64, at: chrono::DateTime<chrono::Utc>) {
        for step in 1..=steps {
            let update = doudi_store::EscalationUpdate {
                warning_id,
                expected_status: doudi_model::WarningStatus::Open,
                expected_ack_steps: step - 1,
                expected_resolve_escalated: false,
                ack_steps: step,
                resolve_escalated: false,
                last_notice_at: at,
                notices: vec![doudi_store::NoticeRow {
                    warning_id,
                    kind: "escalated".into(),
                    recipient: "s-341502".into(),
                    due_at: at,
                    note: "not acknowledged within 4 h".into(),
                }],
            };
            let done = self
                .store
                .record_escalations(&[update])
                .await
                .expect("escalation");
            assert_eq!(
                done.len(),
                1,
                "warning {warning_id} escalated to step {step}"
            );
        }
    }

    /// A JSON API request with a bearer token, asking for English messages (`Accept-Language:
    /// en`: the tests read the messages as the code writes them; Chinese, the default, is tested
    /// with [`Fixture::api_in`]).
    pub async fn api(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.api_in(Some("en"), method, uri, token, body).await
    }

    /// A JSON API request with a bearer token and `Accept-Language: lang` (none: not sent).
    pub async fn api_in(
        &self,
        lang: Option<&str>,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(l) = lang {
            b = b.header("accept-language", l);
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(b.body(body).expect("request")).await
    }

    /// `GET uri` of the API with the token of `role`.
    pub async fn api_get(&self, role: Role, uri: &str) -> Reply {
        self.api("GET", uri, Some(self.token(role)), None).await
    }

    /// `GET uri`, a page, in a session of `role`.
    pub async fn page_get(&self, role: Role, uri: &str) -> Reply {
        self.page("GET", uri, Some(self.token(role)), None).await
    }

    /// The stored warning `id` with its history.
    pub async fn detail(&self, id: i64) -> doudi_store::WarningDetail {
        self.store
            .warning_detail(id)
            .await
            .expect("detail")
            .expect("warning")
    }

    /// Whether the audit chain verifies whole.
    pub async fn audit_whole(&self) -> bool {
        self.store
            .verify_audit()
            .await
            .expect("verify")
            .first_broken
            .is_none()
    }

    /// The pages beside the inbox, warnings and households that `role` opens, from this side.
    pub fn role_pages(&self, role: Role) -> Vec<String> {
        let hh = &self.own.households[0];
        let trace = format!("/households/{hh}/trace");
        match role {
            Role::Officer => vec![
                trace,
                "/review".into(),
                format!("/regions/{}", self.own.township),
            ],
            Role::Supervisor => vec![trace, "/review".into(), "/regions/341502".into()],
            Role::Auditor => vec![
                trace,
                "/review".into(),
                "/deadletters".into(),
                "/regions/34".into(),
            ],
            _ => vec![
                "/deadletters".into(),
                "/regions/34".into(),
                "/review".into(),
            ],
        }
    }

    /// A page request with the cookie of a session opened for API token `token` (and a form
    /// body for posts).
    pub async fn page(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        form: Option<&[(&str, &str)]>,
    ) -> Reply {
        let session = match token {
            Some(t) => Some(self.session(t).await),
            None => None,
        };
        let r = self
            .page_with_session(method, uri, session.as_deref(), form)
            .await;
        if uri == "/sign-out" {
            // Signed out: the next page opens a new session.
            if let Some(t) = token {
                self.sessions.lock().expect("sessions").remove(t);
            }
        }
        r
    }

    /// A page request with `session` as the session cookie.
    pub async fn page_with_session(
        &self,
        method: &str,
        uri: &str,
        session: Option<&str>,
        form: Option<&[(&str, &str)]>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = session {
            b = b.header("cookie", format!("{}={t}", doudi_service::SESSION_COOKIE));
        }
        let body = match form {
            Some(fields) => {
                b = b.header("content-type", "application/x-www-form-urlencoded");
                Body::from(encode_form(fields))
            }
            None => Body::empty(),
        };
        self.send(b.body(body).expect("request")).await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let r = self.app.clone().oneshot(req).await.expect("infallible");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// The session token a sign-in answer sets in its cookie.
pub fn session_cookie(r: &Reply) -> Option<String> {
    let set = r.headers.get("set-cookie")?.to_str().ok()?;
    let value = set
        .split(';')
        .next()?
        .strip_prefix(&format!("{}=", doudi_service::SESSION_COOKIE))?;
    Some(value.to_string()).filter(|v| !v.is_empty())
}

/// `application/x-www-form-urlencoded`.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The source the fixture's feeder token pushes.
pub const FEEDER_SOURCE: &str = "civil_registry";

/// A death envelope of the fixture's first person, as a pushed line (with its newline).
pub fn death_line(event_id: &str) -> String {
    format!(
        r#"{{"event_id":"{event_id}","source":"civil_registry","kind":"death","occurred_at":"2026-03-01T08:00:00+08:00","subject":{{"id_number":"{}","name":"陈桂兰"}},"data":{{"died_on":"2026-02-28"}}}}
"#,
        person("341502", "陈桂兰", 1949, 1, 27, 46).id_number
    )
}

/// Store a feeder token for `source`; returns it.
pub async fn make_feeder_token(store: &Store, source: &str) -> String {
    let (token, hash) = doudi_service::new_token();
    store
        .create_token(&NewToken {
            token_hash: &hash,
            role: Role::Feeder.code(),
            region_code: "34",
            officer_id: None,
            label: "test feeder",
            created_by: "test",
            expires_at: None,
            feed_source: Some(source),
        })
        .await
        .expect("feeder token");
    token
}

/// Store a token; returns it.
pub async fn make_token(
    store: &Store,
    role: Role,
    region: &str,
    officer: Option<&str>,
    expires_at: Option<String>,
) -> String {
    let (token, hash) = doudi_service::new_token();
    store
        .create_token(&NewToken {
            token_hash: &hash,
            role: role.code(),
            region_code: region,
            officer_id: officer,
            label: "test",
            created_by: "test",
            expires_at,
            feed_source: None,
        })
        .await
        .expect("token");
    token
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}
