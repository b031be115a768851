//! Prometheus metrics of doudi's workers and of its HTTP service, in one process-wide registry.
//!
//! Callers record through small functions ([`events_consumed`], [`observe_stage`], [`http_request`]
//! …) and expose the registry on `GET /metrics` with [`router`] (mounted by `doudi serve`) or
//! [`serve`] (a worker's own listener, `doudi run --metrics-addr`).
//!
//! Label values are codes only — source codes, partitions, stages, reason codes, levels, route
//! templates such as `/api/warnings/{id}` — never an ID number, a name or a raw request path, so no
//! personal data reaches a metric (the project's rule for logs and metric labels alike, see
//! docs/ARCHITECTURE.md). Functions that take a route expect the template
//! (axum's `MatchedPath`), which [`track_http`] reads for you.

/// Log `message` (info) with counts of `report` as fields of the same names, so that each
/// report's summary line names each count once: `info_counts!(report, "delivery pass"; delivered,
/// failed)` is `tracing::info!(delivered = report.delivered, failed = report.failed, "delivery
/// pass")`. Fields that are not the report's go first, before a second `;`. Counts only: never a
/// field that could hold personal data.
#[macro_export]
macro_rules! info_counts {
    ($report:expr, $message:literal; $($field:ident),+ $(,)?) => {
        ::tracing::info!($($field = $report.$field,)+ $message)
    };
    ($report:expr, $message:literal; $($key:ident = $value:expr),+; $($field:ident),+ $(,)?) => {
        ::tracing::info!($($key = $value,)+ $($field = $report.$field,)+ $message)
    };
}

/// Add the counts `fields` of report `other` to `report`'s, field by field:
/// `add_counts!(self, o; delivered, failed)` is `self.delivered += o.delivered; self.failed +=
/// o.failed;` (the reports of one pass or batch summed over a run).
#[macro_export]
macro_rules! add_counts {
    ($report:expr, $other:expr; $($field:ident),+ $(,)?) => {
        $($report.$field += $other.$field;)+
    };
}

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.25 ms to ~8 s (doubling): batches, stages and requests all fit.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

struct Metrics {
    registry: Registry,
    events_consumed: Family<Labels, Counter>,
    consumer_lag: Family<Labels, Gauge>,
    stage_seconds: HistogramFamily,
    dead_letters: Family<Labels, Counter>,
    warnings: Family<Labels, Counter>,
    db_errors: Family<Labels, Counter>,
    http_requests: Family<Labels, Counter>,
    http_seconds: HistogramFamily,
    auth_failures: Counter,
    linkage_models: Family<Labels, Counter>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("doudi");
        let events_consumed = Family::<Labels, Counter>::default();
        registry.register(
            "events_consumed",
            "Records read from a feed, by source (valid and invalid)",
            events_consumed.clone(),
        );
        let consumer_lag = Family::<Labels, Gauge>::default();
        registry.register(
            "consumer_lag",
            "Records in a Kafka partition not yet committed by this worker, by topic and partition",
            consumer_lag.clone(),
        );
        let stage_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "stage_seconds",
            "Time spent per batch in each stage of the pipeline (read, link, assess, commit, batch)",
            stage_seconds.clone(),
        );
        let dead_letters = Family::<Labels, Counter>::default();
        registry.register(
            "dead_letters",
            "Records refused at ingest, by source and reason code",
            dead_letters.clone(),
        );
        let warnings = Family::<Labels, Counter>::default();
        registry.register(
            "warnings",
            "Warnings opened or raised, by level and what happened (opened, raised)",
            warnings.clone(),
        );
        let db_errors = Family::<Labels, Counter>::default();
        registry.register(
            "db_errors",
            "Database operations that failed (and were retried or stopped the worker), by operation",
            db_errors.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by method, route template and status",
            http_requests.clone(),
        );
        let http_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_seconds",
            "HTTP request latency, by method and route template",
            http_seconds.clone(),
        );
        let auth_failures = Counter::default();
        registry.register(
            "auth_failures",
            "Requests refused because their token was missing, unknown, expired or revoked",
            auth_failures.clone(),
        );
        let linkage_models = Family::<Labels, Counter>::default();
        registry.register(
            "linkage_models",
            "Identity models trained or loaded, by outcome (activated, refused: degenerate and not used, the last good model kept)",
            linkage_models.clone(),
        );
        Metrics {
            linkage_models,
            registry,
            events_consumed,
            consumer_lag,
            stage_seconds,
            dead_letters,
            warnings,
            db_errors,
            http_requests,
            http_seconds,
            auth_failures,
        }
    })
}

/// `n` records read from `source` (a source code such as `health_insurance`).
pub fn events_consumed(source: &str, n: u64) {
    metrics()
        .events_consumed
        .get_or_create(&vec![("source", source.to_string())])
        .inc_by(n);
}

/// The lag of one Kafka partition: its high watermark minus the next offset to commit.
pub fn set_consumer_lag(topic: &str, partition: i32, lag: i64) {
    metrics()
        .consumer_lag
        .get_or_create(&vec![
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ])
        .set(lag);
}

/// Forget a partition's lag (it was revoked from this worker).
pub fn clear_consumer_lag(topic: &str, partition: i32) {
    metrics().consumer_lag.remove(&vec![
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]);
}

/// One batch spent `seconds` in `stage` (`read`, `link`, `assess`, `commit`, or `batch` for the
/// whole).
pub fn observe_stage(stage: &'static str, seconds: f64) {
    metrics()
        .stage_seconds
        .get_or_create(&vec![("stage", stage.to_string())])
        .observe(seconds);
}

/// `n` records from `source` refused for `reason` (a reason code such as `bad_json`).
pub fn dead_letters(source: &str, reason: &str, n: u64) {
    metrics()
        .dead_letters
        .get_or_create(&vec![
            ("source", source.to_string()),
            ("reason", reason.to_string()),
        ])
        .inc_by(n);
}

/// `n` warnings at `level` (`red`, `orange`, `yellow`) were `opened` or `raised`.
pub fn warnings(level: &str, what: &'static str, n: u64) {
    metrics()
        .warnings
        .get_or_create(&vec![
            ("level", level.to_string()),
            ("what", what.to_string()),
        ])
        .inc_by(n);
}

/// A database operation (`batch`, `connect`, `read`, …) failed.
pub fn db_error(operation: &'static str) {
    metrics()
        .db_errors
        .get_or_create(&vec![("operation", operation.to_string())])
        .inc();
}

/// The methods counted under their own name; any other (a client may send any token as a
/// method) is counted as `other`, so that no client can add label values.
pub const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The label of an HTTP method: one of [`HTTP_METHODS`], else `other`.
pub fn method_label(method: &str) -> &'static str {
    HTTP_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// One HTTP request: `route` is the route template, never the raw path. The method is counted
/// by [`method_label`] (a closed set), so label values stay bounded whatever clients send.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    let m = metrics();
    let method = method_label(method);
    m.http_requests
        .get_or_create(&vec![
            ("method", method.to_string()),
            ("route", route.to_string()),
            ("status", status.to_string()),
        ])
        .inc();
    m.http_seconds
        .get_or_create(&vec![
            ("method", method.to_string()),
            ("route", route.to_string()),
        ])
        .observe(seconds);
}

/// A request refused for its credentials.
pub fn auth_failure() {
    metrics().auth_failures.inc();
}

/// An identity model was `activated` or `refused` (degenerate: the last good model is kept).
pub fn linkage_model(outcome: &'static str) {
    metrics()
        .linkage_models
        .get_or_create(&vec![("outcome", outcome.to_string())])
        .inc();
}

/// The registry in Prometheus' text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    if let Err(e) = encode(&mut out, &metrics().registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

async fn metrics_handler() -> Response {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(),
    )
        .into_response()
}

/// A router with `GET /metrics`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/metrics", get(metrics_handler))
}

/// Middleware (for `axum::middleware::from_fn`, added with `Router::layer`) that counts and times
/// every request by its route template. Requests that match no route count as `unmatched`, and
/// methods outside [`HTTP_METHODS`] as `other`: every label takes values from a closed set (the
/// router's templates, nine methods and `other`, the status codes), however many odd requests
/// come in.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Serve `GET /metrics` on `addr` until `shutdown` resolves (a worker's own listener).
pub async fn serve(
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    axum::serve(listener, router::<()>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        events_consumed("health_insurance", 3);
        set_consumer_lag("health_insurance", 2, 17);
        observe_stage("commit", 0.002);
        dead_letters("housing", "bad_json", 1);
        warnings("red", "opened", 1);
        db_error("batch");
        http_request("GET", "/api/warnings/{id}", 200, 0.001);
        auth_failure();
        let text = render();
        for needle in [
            "doudi_events_consumed_total{source=\"health_insurance\"} 3",
            "doudi_consumer_lag{topic=\"health_insurance\",partition=\"2\"} 17",
            "doudi_stage_seconds_count{stage=\"commit\"} 1",
            "doudi_dead_letters_total{source=\"housing\",reason=\"bad_json\"} 1",
            "doudi_warnings_total{level=\"red\",what=\"opened\"} 1",
            "doudi_db_errors_total{operation=\"batch\"} 1",
            "doudi_http_requests_total{method=\"GET\",route=\"/api/warnings/{id}\",status=\"200\"} 1",
            "doudi_http_request_seconds_count{method=\"GET\",route=\"/api/warnings/{id}\"} 1",
            "doudi_auth_failures_total 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        clear_consumer_lag("health_insurance", 2);
        assert!(!render().contains("partition=\"2\""));
    }

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("XM1"), "other");
        assert_eq!(method_label("get"), "other");
        let before = render().len();
        for i in 0..2000 {
            http_request(&format!("XM{i}"), UNMATCHED_ROUTE, 405, 0.0001);
        }
        let after = render();
        assert!(
            !after.contains("method=\"XM"),
            "an odd method became a label"
        );
        assert!(
            after.contains("method=\"other\",route=\"unmatched\",status=\"405\"} 2000"),
            "{after}"
        );
        // A few new series at most (this one's counter and histogram; the other test's), not 2,000.
        assert!(
            after.len() < before + 16 * 1024,
            "{} -> {}",
            before,
            after.len()
        );
    }

    #[tokio::test]
    async fn the_worker_listener_serves_metrics() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(addr, async {
            let _ = stopped.await;
        }));
        events_consumed("employment", 1);
        let mut body = String::new();
        for _ in 0..50 {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(mut s) => {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .await
                        .unwrap();
                    s.read_to_string(&mut body).await.unwrap();
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("doudi_events_consumed_total{source=\"employment\"}"));
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
