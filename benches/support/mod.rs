//! What the benches share: their knobs from the environment, the runtime, a generated data set, a
//! store holding the register with an engine over it, one pipeline run over a feeds folder, and the
//! whole application served on loopback.

// Each bench uses some of these.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use doudi_pipeline::{run_files, Engine, RunOptions, RunReport};
use doudi_risk::RuleSet;
use doudi_store::Store;
use doudi_synth::{GenConfig, Noise};

/// The whole number in the environment variable `name`, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `cargo bench` runs this (it passes `--bench`; `cargo test --benches` passes nothing:
/// run small then).
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The runtime of the `doudi` binary: two worker threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Run `bench` to its end on [`runtime`], told whether it is [`benching`].
pub fn main<F: Future<Output = ()>>(bench: impl FnOnce(bool) -> F) {
    let benching = benching();
    runtime().block_on(bench(benching));
}

/// The `p` quantile (0 to 1) of sorted latencies; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A data set of `households` from `seed`, `months` of feeds from 2025-11-01.
pub fn config(households: usize, seed: u64, months: u32, hardship_share: f64) -> GenConfig {
    GenConfig {
        households,
        seed,
        start: NaiveDate::from_ymd_opt(2025, 11, 1).expect("date"),
        months,
        hardship_share,
        noise: Noise::default(),
    }
}

/// The URL of the SQLite database `name` in `dir`.
pub fn sqlite(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// An engine over the store's register, with the built-in rules.
pub async fn engine(store: &Store) -> Engine {
    Engine::new(
        RuleSet::builtin(),
        doudi_model::ParseLimits::default(),
        store.load_register().await.expect("load register"),
    )
}

/// The store at `url`, `register` imported into it.
pub async fn store(url: &str, register: &[doudi_model::Household]) -> Store {
    let store = Store::open(url).await.expect("open store");
    store
        .import_register(register, "register.jsonl", true)
        .await
        .expect("import");
    store
}

/// [`store`], and an engine over it.
pub async fn open(url: &str, register: &[doudi_model::Household]) -> (Store, Arc<Engine>) {
    let store = store(url, register).await;
    let engine = Arc::new(engine(&store).await);
    (store, engine)
}

/// How `run --once` reads `feeds_dir`, in batches of 10,000.
pub fn run_options(feeds_dir: PathBuf) -> RunOptions {
    RunOptions {
        feeds_dir,
        batch_size: 10_000,
        channel_batches: 2,
        once: true,
        poll_interval: Duration::from_secs(1),
        invalid: Default::default(),
    }
}

/// One pipeline run over the feeds of `opts`, to their end.
pub async fn run_once(store: &Store, engine: Arc<Engine>, opts: &RunOptions) -> RunReport {
    run_files(
        store,
        engine,
        opts,
        &(),
        doudi_pipeline::driver::CancellationToken::new(),
    )
    .await
    .expect("run")
}

/// The whole application served on loopback until [`Served::stop`].
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serve `doudi_service::app(state)` on a free loopback port.
pub async fn serve(state: doudi_service::AppState) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(doudi_service::serve(
        listener,
        doudi_service::app(state),
        async {
            let _ = stopped.await;
        },
    ));
    Served { base, stop, server }
}

impl Served {
    /// Stop serving and wait for the server to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// A new bearer token of `role` for `region_code` (its officer, or the feed it may push),
/// stored; the token itself.
pub async fn token(
    store: &Store,
    role: &str,
    region_code: &str,
    officer_id: Option<&str>,
    feed_source: Option<&str>,
) -> String {
    let (token, hash) = doudi_service::new_token();
    store
        .create_token(&doudi_store::NewToken {
            token_hash: &hash,
            role,
            region_code,
            officer_id,
            label: "bench",
            created_by: "bench",
            expires_at: None,
            feed_source,
        })
        .await
        .expect("token");
    token
}

/// The distinct townships (the 9-digit prefixes) of `regions`, sorted: one officer each, so that
/// warnings are routed as in production.
pub fn townships<'a>(regions: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut townships: Vec<String> = regions
        .into_iter()
        .map(|r| r[..9.min(r.len())].to_string())
        .collect();
    townships.sort();
    townships.dedup();
    townships
}
