//! `doudi serve`: the HTTP face of the store — a JSON API under `/api/…` (described by
//! `schemas/openapi.json`), server-rendered pages for township officers and auditors, `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! A thin shell: every decision is a use case of `doudi-app` (the same the command line calls):
//! reading a warning, moving it, a review decision (over the member's household alone), a
//! dead-letter replay, a household's record, timeline and trace under the one masking policy
//! (`doudi_app::mask`). A handler reads its request, calls the use case and maps the result to an
//! HTTP status (`AppError` → [`ApiError`]). All routes are in one table ([`routes`]): the router,
//! the OpenAPI test and the authorisation matrix test are built from it.
//!
//! Modules, lowest first: `error` (statuses), `principal` (who is behind a request), `html` (the
//! page frame, error pages, small pieces), `auth` (tokens and the guard), `contract` (request
//! bodies checked against `schemas/openapi.json` itself, compiled in), `api` (the JSON routes),
//! `pages` (the HTML routes); `transport` (TLS and trusted proxies) beside them.
//!
//! Access: API tokens stored hashed (`doudi tokens create`), four roles (officer, supervisor,
//! auditor, admin), regional roles limited to their region prefix (anything outside it answers 404,
//! as if it did not exist), failed authentication rate-limited per client address (the limit is
//! checked before any token), sign-in sessions apart from API tokens, client addresses from
//! `X-Forwarded-For` only through trusted proxies, `Cache-Control: no-store` on every answer,
//! 413 for any body over the limit, metric labels from closed sets. What it must never do: log personal data (ID numbers, names,
//! addresses, raw records), show it to a role that does not need it, or let a person read a
//! household's personal data without an audit record of the read.

mod api;
mod auth;
mod contract;
mod error;
mod html;
mod locale;
mod messages;
mod pages;
mod principal;
pub mod push;
mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

pub use auth::{
    client_ip, form_token, forwarded_client, hash_token, new_token, AuthLimiter, SESSION_COOKIE,
    SESSION_HOURS,
};
pub use contract::DOCUMENT as OPENAPI_DOCUMENT;
pub use error::ApiError;
/// The pages' two languages and their domain words, shared with the command line.
pub use locale::{move_error, yuan, Clock, Lang};
pub use principal::{Principal, Role};
pub use transport::{check_transport, serve_tls, tls_config, TlsListener, TrustedProxies};

/// A time zone by its IANA name (`Asia/Shanghai`), or what is wrong with the name.
pub fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, String> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!("{name:?} is not a time zone of the IANA database (write it like Asia/Shanghai)")
    })
}

/// What the service needs besides the store.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Where people reach the service (cookies are `Secure` when it is `https://…`).
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Failed authentications a client address may make per minute (also the burst); beyond it 429.
    pub auth_failures_per_minute: u32,
    /// Most warnings on one page of the API.
    pub max_page_size: i64,
    /// The rule set (a review decision assesses the household; the township's relief limit).
    pub rules: doudi_risk::RuleSet,
    pub parse_limits: doudi_model::ParseLimits,
    /// Identity thresholds (a dead-letter replay links records).
    pub thresholds: doudi_linkage::Thresholds,
    /// The feeds folder (a replay re-reads records kept only in part).
    pub feeds_dir: PathBuf,
    /// Dead letters replayed per transaction.
    pub replay_page_size: i64,
    /// The reverse proxies in front of the service (`serve.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Largest pushed batch (`POST /api/feeds/{source}`), in bytes; beyond it 413.
    pub push_max_bytes: usize,
    /// Batches a feeder token may push per minute; beyond it 429.
    pub push_batches_per_minute: u32,
    /// Where accepted batches go instead of the feeds folder (`serve.push_to = "kafka"`: a topic,
    /// acknowledged by every in-sync replica); `None`: appended to the feeds folder.
    pub push_sink: Option<std::sync::Arc<dyn push::PushSink>>,
    /// The feed profiles a feeder may push a department's own export in
    /// (`POST /api/feeds/{source}?profile=NAME`; `serve.push_profiles`).
    pub push_profiles: Vec<push::PushProfile>,
    /// The raw-row Kafka topics and their profiles (`[kafka.profiles]`): a dead-letter replay
    /// maps their refused rows again with them.
    pub topic_profiles: Vec<(String, std::sync::Arc<doudi_feeds::Profile>)>,
    /// How warning deadlines follow from event and receipt times (`[warnings]`), for the warnings
    /// a review decision or a replay opens.
    pub deadlines: doudi_warnings::fold::DeadlinePolicy,
    /// The locality's time zone: pages show times in it, to the minute (`locality.time_zone`, an
    /// IANA name; default Asia/Shanghai).
    pub time_zone: chrono_tz::Tz,
}

impl ServiceConfig {
    /// Defaults around a rule set (tests, benches).
    pub fn with_rules(rules: doudi_risk::RuleSet) -> ServiceConfig {
        ServiceConfig {
            public_url: "http://localhost:8080".into(),
            max_body_bytes: 64 * 1024,
            auth_failures_per_minute: 10,
            max_page_size: 500,
            rules,
            parse_limits: doudi_model::ParseLimits::default(),
            thresholds: doudi_linkage::Thresholds::default(),
            feeds_dir: PathBuf::from("feeds"),
            replay_page_size: 10_000,
            trusted_proxies: TrustedProxies::default(),
            push_max_bytes: 8 * 1024 * 1024,
            push_batches_per_minute: 600,
            push_sink: None,
            push_profiles: Vec::new(),
            topic_profiles: Vec::new(),
            deadlines: Default::default(),
            time_zone: chrono_tz::Asia::Shanghai,
        }
    }
}

impl ServiceConfig {
    /// What a use case builds the pipeline's engine with (a review decision, a replay).
    pub fn engine_settings(&self) -> doudi_app::EngineSettings {
        doudi_app::EngineSettings {
            limits: self.parse_limits,
            thresholds: self.thresholds.clone(),
            deadlines: self.deadlines,
            ..doudi_app::EngineSettings::with_rules(self.rules.clone())
        }
    }
}

struct Inner {
    store: doudi_store::Store,
    config: ServiceConfig,
    auth_limiter: AuthLimiter,
    push: push::PushState,
}

/// The service's shared state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn new(store: doudi_store::Store, config: ServiceConfig) -> AppState {
        AppState(Arc::new(Inner {
            store,
            auth_limiter: AuthLimiter::new(config.auth_failures_per_minute),
            push: push::PushState::new(config.push_batches_per_minute),
            config,
        }))
    }

    pub fn store(&self) -> &doudi_store::Store {
        &self.0.store
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.0.config
    }

    pub(crate) fn auth_limiter(&self) -> &AuthLimiter {
        &self.0.auth_limiter
    }

    pub(crate) fn push(&self) -> &push::PushState {
        &self.0.push
    }
}

/// What a route serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// JSON under `/api/`, in `schemas/openapi.json`; bearer token.
    Api,
    /// Process and database probes, metrics: no token (in `schemas/openapi.json` too).
    Probe,
    /// An HTML page; session cookie.
    Page,
}

/// One route of the service.
pub struct Route {
    pub method: &'static str,
    /// The axum path template (`/api/warnings/{id}`), as in the OpenAPI document.
    pub path: &'static str,
    pub kind: Kind,
    /// Roles admitted (empty: no token needed). Regional roles are further limited to their
    /// region by the handler.
    pub roles: &'static [Role],
    pub handler: MethodRouter<AppState>,
}

const ALL: &[Role] = &Role::ALL;
const DOERS: &[Role] = &[Role::Officer, Role::Supervisor];
const TRACE_READERS: &[Role] = &[Role::Officer, Role::Supervisor, Role::Auditor];
const DEAD_LETTER_READERS: &[Role] = &[Role::Auditor, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];
const SUPERVISOR: &[Role] = &[Role::Supervisor];
const PUBLIC: &[Role] = &[];
/// A department's program, for its one source (checked by the handler).
const FEEDER: &[Role] = &[Role::Feeder];

/// The path prefix of the push, whose bodies have their own limit (`serve.push_max_bytes`).
pub const PUSH_PREFIX: &str = "/api/feeds/";

fn route(
    method: &'static str,
    path: &'static str,
    kind: Kind,
    roles: &'static [Role],
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        kind,
        roles,
        handler,
    }
}

/// The route table, one line a route: method, path, what it serves, the roles admitted, the
/// handler (the method is said once: it names both the route and the handler's method filter).
macro_rules! table {
    ($($method:ident $path:literal $kind:ident $roles:ident $handler:path;)*) => {
        vec![$(route(
            stringify!($method),
            $path,
            $kind,
            $roles,
            on(MethodFilter::$method, $handler),
        ),)*]
    };
}

/// Every route of the service: the one table the router, the OpenAPI test and the authorisation
/// matrix are built from.
pub fn routes() -> Vec<Route> {
    use Kind::{Api, Page, Probe};
    table! {
        GET  "/healthz"                       Probe PUBLIC              api::healthz;
        GET  "/readyz"                        Probe PUBLIC              api::readyz;
        GET  "/api/warnings"                  Api   ALL                 api::list_warnings;
        GET  "/api/warnings/{id}"             Api   ALL                 api::show_warning;
        POST "/api/warnings/{id}/acknowledge" Api   DOERS               api::acknowledge;
        POST "/api/warnings/{id}/visit"       Api   DOERS               api::visit;
        POST "/api/warnings/{id}/resolve"     Api   DOERS               api::resolve;
        GET  "/api/households/{id}"           Api   ALL                 api::show_household;
        GET  "/api/households/{id}/timeline"  Api   ALL                 api::household_timeline;
        GET  "/api/households/{id}/trace"     Api   TRACE_READERS       api::household_trace;
        GET  "/api/review"                    Api   ALL                 api::list_review;
        POST "/api/review/{seq}/decide"       Api   DOERS               api::decide_review;
        GET  "/api/deadletters"               Api   DEAD_LETTER_READERS api::list_dead_letters;
        POST "/api/deadletters/replay"        Api   ADMIN               api::replay_dead_letters;
        GET  "/api/officers"                  Api   ALL                 api::list_officers;
        GET  "/api/silences"                  Api   ALL                 api::list_silences;
        POST "/api/silences"                  Api   SUPERVISOR          api::add_silence;
        GET  "/api/regions/{code}/overview"   Api   ALL                 api::region_overview;
        POST "/api/feeds/{source}"            Api   FEEDER              push::push_feed;
        GET  "/sign-in"                       Page  PUBLIC              pages::sign_in_form;
        POST "/sign-in"                       Page  PUBLIC              pages::sign_in;
        POST "/sign-out"                      Page  ALL                 pages::sign_out;
        GET  "/"                              Page  ALL                 pages::inbox;
        GET  "/warnings/{id}"                 Page  ALL                 pages::warning;
        POST "/warnings/{id}/acknowledge"     Page  DOERS               pages::acknowledge;
        POST "/warnings/{id}/visit"           Page  DOERS               pages::visit;
        POST "/warnings/{id}/resolve"         Page  DOERS               pages::resolve;
        GET  "/regions/{code}"                Page  ALL                 pages::region_page;
        GET  "/households/{id}"               Page  ALL                 pages::household;
        GET  "/review"                        Page  ALL                 pages::review;
        POST "/review/{seq}/decide"           Page  DOERS               pages::decide;
        GET  "/deadletters"                   Page  DEAD_LETTER_READERS pages::dead_letters;
        POST "/deadletters/replay"            Page  ADMIN               pages::replay;
        GET  "/households/{id}/trace"         Page  TRACE_READERS       pages::trace;
    }
}

/// The path of `/metrics` (served by `doudi_telemetry::router`, outside the table's handlers).
pub const METRICS_PATH: &str = "/metrics";

/// Middleware: a body announced larger than `serve.max_body_bytes` (on the push,
/// `serve.push_max_bytes`) is refused with 413 on every route, before any handler (or the guard)
/// runs; a body that turns out larger while read (no `Content-Length`) is refused with 413 by the
/// extractor ([`DefaultBodyLimit`]).
async fn body_limit(
    axum::extract::State((max, push_max)): axum::extract::State<(usize, usize)>,
    req: Request,
    next: Next,
) -> Response {
    let (max, key) = if req.uri().path().starts_with(PUSH_PREFIX) {
        (push_max, "serve.push_max_bytes")
    } else {
        (max, "serve.max_body_bytes")
    };
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return ApiError::PayloadTooLarge(format!(
            "the request body is larger than the service accepts ({max} bytes: {key})"
        ))
        .into_response();
    }
    next.run(req).await
}

/// Middleware: `Cache-Control: no-store` on every answer (pages and API answers carry personal
/// data in clear; nothing of the service is for a shared or browser cache to keep), unless a
/// handler said otherwise.
async fn no_store(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    r.headers_mut()
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

/// The whole application: every route of [`routes`] behind its guard, `/metrics`, JSON errors,
/// the body size limit (413), `Cache-Control: no-store` and request metrics.
pub fn app(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for r in routes() {
        let guard = auth::Guard {
            state: state.clone(),
            roles: r.roles,
            kind: r.kind,
        };
        let mut handler = r
            .handler
            .route_layer(axum::middleware::from_fn_with_state(guard, auth::guard));
        if r.path.starts_with(PUSH_PREFIX) {
            handler = handler.layer(DefaultBodyLimit::max(state.config().push_max_bytes));
        }
        router = router.route(r.path, handler);
    }
    router
        .merge(doudi_telemetry::router())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            (state.config().max_body_bytes, state.config().push_max_bytes),
            body_limit,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(axum::middleware::from_fn(no_store))
        .layer(axum::middleware::from_fn(doudi_telemetry::track_http))
        .with_state(state)
}

/// Serve `app` on `listener` until `shutdown` resolves, then finish the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
