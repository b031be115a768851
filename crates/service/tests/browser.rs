//! In a real browser (headless Chromium, driven through chromedriver's W3C WebDriver HTTP API):
//! an officer signs in with their token, sees only their township's warnings, acknowledges one,
//! and the change is in the store (the warning's state) and in the audit trail.
//!
//! And every page of every role at a phone's size (390×844) and a desktop's (1280×800): nothing
//! wider than the window (no sideways scrolling), and axe-core (from npm: `DOUDI_TEST_AXE` names
//! its `axe.min.js`; without it that part prints a skip line) finds no critical or serious
//! violation. With `DOUDI_TEST_SCREENSHOTS` naming a folder (docs/screenshots), the officer's
//! inbox, a warning, a household, the auditor's trace and the supervisor's county overview (with a
//! warning in its escalated list) are saved there as phone screenshots.
//!
//! Runs when `DOUDI_TEST_CHROMEDRIVER` names chromedriver (Chromium at `DOUDI_TEST_CHROMIUM`,
//! default /usr/bin/chromium); otherwise it prints a skip line. `.ci/run` sets it.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Fixture;
use doudi_service::Role;
use serde_json::{json, Value};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.expect("webdriver body");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    assert!(status.is_success(), "{method} {url}: {status} {v}");
    v["value"].clone()
}

impl Driver {
    async fn start(chromedriver: &str, chromium: &str, profile: &std::path::Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    ready = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut driver = Driver {
            child,
            http,
            base,
            session: String::new(),
        };
        assert!(ready, "chromedriver did not answer on {}", driver.base);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = call(
            &driver.http,
            reqwest::Method::POST,
            &format!("{}/session", driver.base),
            Some(caps),
        )
        .await;
        driver.session = v["sessionId"].as_str().expect("session id").to_string();
        driver
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    /// A command of this session (`POST` of `body` to `path`): its value.
    async fn command(&self, path: &str, body: Value) -> Value {
        call(
            &self.http,
            reqwest::Method::POST,
            &self.url(path),
            Some(body),
        )
        .await
    }

    /// A value of this session (`GET path`).
    async fn read(&self, path: &str) -> Value {
        call(&self.http, reqwest::Method::GET, &self.url(path), None).await
    }

    async fn go(&self, url: &str) {
        self.command("/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .command("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.command(&format!("/element/{e}/value"), json!({"text": text}))
            .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.command(&format!("/element/{e}/click"), json!({}))
            .await;
    }

    async fn source(&self) -> String {
        self.read("/source")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn current_url(&self) -> String {
        self.read("/url").await.as_str().unwrap_or("").to_string()
    }

    /// The current URL once `done` holds for it (a click's navigation may still be under way when
    /// the click returns), or whatever it is after 10 s.
    async fn wait_url(&self, done: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let url = self.current_url().await;
            if done(&url) || start.elapsed() > std::time::Duration::from_secs(10) {
                return url;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The browser window's size (the page's viewport in headless Chromium).
    async fn size(&self, width: u32, height: u32) {
        self.command("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// Run `script` (a function body) in the page; its return value.
    async fn exec(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Run `script` in the page; it calls `arguments[0]` with its result.
    async fn exec_async(&self, script: &str) -> Value {
        self.command("/execute/async", json!({"script": script, "args": []}))
            .await
    }

    /// The viewport as a PNG.
    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.read("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("a base64 PNG")
    }

    async fn delete_cookies(&self) {
        call(
            &self.http,
            reqwest::Method::DELETE,
            &self.url("/cookie"),
            None,
        )
        .await;
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// chromedriver and Chromium, as the environment names them; `None` (and a skip line) when it
/// names no chromedriver.
fn browser() -> Option<(String, String)> {
    let Ok(chromedriver) = std::env::var("DOUDI_TEST_CHROMEDRIVER") else {
        println!("skipped: set DOUDI_TEST_CHROMEDRIVER to chromedriver (and DOUDI_TEST_CHROMIUM to Chromium) to run the browser test");
        return None;
    };
    let chromium =
        std::env::var("DOUDI_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    Some((chromedriver, chromium))
}

/// The fixture's application served on loopback (with the browser's profile folder), until
/// [`Served::stop`].
struct Served {
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _profile: tempfile::TempDir,
}

impl Served {
    /// Serve `fx`'s application and start the browser: the site's address, the driver, the server.
    async fn start(
        fx: &Fixture,
        (chromedriver, chromium): &(String, String),
    ) -> (String, Driver, Served) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let site = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(doudi_service::serve(listener, fx.app.clone(), async {
            let _ = stopped.await;
        }));
        let profile = tempfile::tempdir().expect("profile dir");
        let driver = Driver::start(chromedriver, chromium, profile.path()).await;
        let served = Served {
            stop,
            server,
            _profile: profile,
        };
        (site, driver, served)
    }

    /// Stop serving, once the server has finished its requests.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.expect("server task").expect("server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_signs_in_sees_their_township_and_acknowledges_a_warning_in_a_browser() {
    let Some(browser) = browser() else {
        return;
    };
    let fx = Fixture::new().await;
    let (site, driver, server) = Served::start(&fx, &browser).await;

    driver.go(&format!("{site}/sign-in")).await;
    driver
        .type_into("input[name=token]", fx.token(Role::Officer))
        .await;
    driver.click("button[type=submit]").await;
    assert!(
        driver.wait_url(|u| u.ends_with('/')).await.ends_with('/'),
        "after sign-in: the inbox"
    );
    let inbox = driver.source().await;
    for w in &fx.own.warnings {
        assert!(
            inbox.contains(&format!("/warnings/{w}\"")),
            "own warning #{w} missing: {inbox}"
        );
    }
    for w in &fx.other.warnings {
        assert!(
            !inbox.contains(&format!("/warnings/{w}\"")),
            "another region's warning #{w} shown"
        );
    }
    let w = fx.own.warnings[0];
    driver.click(&format!("a[href='/warnings/{w}']")).await;
    driver
        .wait_url(|u| u.ends_with(&format!("/warnings/{w}")))
        .await;
    driver
        .type_into(
            "form[action$='/acknowledge'] input[name=note]",
            "已电话联系家属",
        )
        .await;
    driver.click("#acknowledge").await;
    let done = format!("/warnings/{w}?done=acknowledged");
    assert!(driver.wait_url(|u| u.contains(&done)).await.contains(&done));
    let after = driver.source().await;
    assert!(after.contains("已记录"), "{after}");
    driver.quit().await;

    let d = fx.detail(w).await;
    assert_eq!(d.warning.status, doudi_model::WarningStatus::Acknowledged);
    assert!(d.history.iter().any(|h| h.action == "acknowledge"
        && h.actor == "o-341502001"
        && h.note.as_deref() == Some("已电话联系家属")));
    let trail = fx.store.audit_records(1, 10_000).await.expect("audit");
    assert!(trail.iter().any(|a| a.action == "warning_acknowledge"
        && a.actor == "o-341502001"
        && a.subject == format!("warning:{w}")));
    assert!(trail.iter().any(|a| a.action == "read_personal_data"
        && a.actor == "o-341502001"
        && a.detail.contains("GET /warnings/{id}")));
    assert!(fx.audit_whole().await);
    server.stop().await;
}

/// Sign in through the form as `token`'s holder (after forgetting any earlier session).
async fn sign_in_as(driver: &Driver, site: &str, token: &str) {
    driver.delete_cookies().await;
    driver.go(&format!("{site}/sign-in")).await;
    driver.type_into("input[name=token]", token).await;
    driver.click("button[type=submit]").await;
    let url = driver.wait_url(|u| u.ends_with('/')).await;
    assert!(url.ends_with('/'), "after sign-in: the inbox, got {url}");
}

/// What a check of one page found wrong (empty: nothing).
async fn check_page(driver: &Driver, axe: Option<&str>, label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let v = driver
        .exec("return [document.documentElement.scrollWidth, window.innerWidth];")
        .await;
    let (scroll, inner) = (v[0].as_i64().unwrap_or(-1), v[1].as_i64().unwrap_or(0));
    if scroll > inner {
        problems.push(format!(
            "{label}: {scroll} px wide in a {inner} px window (scrolls sideways)"
        ));
    }
    if let Some(source) = axe {
        let loaded = driver.exec(&format!("{source}\n;return typeof axe;")).await;
        assert_eq!(loaded, "object", "axe-core did not load");
        let found = driver
            .exec_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
                   .filter(v => v.impact === 'critical' || v.impact === 'serious')
                   .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at '
                     + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))))
                   .catch(e => done(['axe failed: ' + e]));",
            )
            .await;
        for v in found.as_array().into_iter().flatten() {
            problems.push(format!("{label}: {}", v.as_str().unwrap_or("?")));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_and_a_desktop_and_passes_axe_core() {
    let Some(browser) = browser() else {
        return;
    };
    let axe = match std::env::var("DOUDI_TEST_AXE") {
        Ok(path) => Some(
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("DOUDI_TEST_AXE={path}: {e}")),
        ),
        Err(_) => {
            println!("skipped (axe-core part): set DOUDI_TEST_AXE to axe-core's axe.min.js (npm install axe-core) to check accessibility");
            None
        }
    };
    let shots = std::env::var("DOUDI_TEST_SCREENSHOTS").ok();
    let fx = Fixture::new().await;
    // The county overview's escalated list has a warning in it.
    fx.escalate(
        fx.own.warnings[1],
        2,
        chrono::Utc::now() - chrono::TimeDelta::hours(3),
    )
    .await;
    let (site, driver, server) = Served::start(&fx, &browser).await;

    let w = fx.own.warnings[0];
    let hh = fx.own.households[0].clone();
    let common_pages = vec![
        "/".to_string(),
        "/?level=red&state=all".into(),
        format!("/warnings/{w}"),
        format!("/households/{hh}"),
        "/warnings/999999".into(),
    ];
    let mut plan: Vec<(Role, Vec<String>)> = Vec::new();
    for role in [Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin] {
        let mut pages = common_pages.clone();
        pages.extend(fx.role_pages(role));
        plan.push((role, pages));
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for (width, height) in [(390, 844), (1280, 800)] {
        driver.size(width, height).await;
        driver.delete_cookies().await;
        driver.go(&format!("{site}/sign-in")).await;
        let inner = driver.exec("return window.innerWidth;").await;
        assert!(
            inner.as_i64().is_some_and(|i| i <= i64::from(width)),
            "the window is {inner} px wide, asked for {width}"
        );
        problems.extend(check_page(&driver, axe.as_deref(), &format!("/sign-in at {width}")).await);
        checked += 1;
        for (role, pages) in &plan {
            sign_in_as(&driver, &site, fx.token(*role)).await;
            for path in pages {
                driver.go(&format!("{site}{path}")).await;
                let label = format!("{path} as {} at {width}×{height}", role.code());
                problems.extend(check_page(&driver, axe.as_deref(), &label).await);
                checked += 1;
                if let (Some(dir), 390) = (&shots, width) {
                    let name = match (role, path.as_str()) {
                        (Role::Officer, "/") => Some("officer-inbox"),
                        (Role::Officer, p)
                            if p.starts_with("/warnings/") && !p.ends_with("999999") =>
                        {
                            Some("officer-warning")
                        }
                        (Role::Officer, p) if p == format!("/households/{hh}") => {
                            Some("officer-household")
                        }
                        (Role::Auditor, p) if p.ends_with("/trace") => Some("auditor-trace"),
                        (Role::Supervisor, "/regions/341502") => Some("supervisor-county"),
                        _ => None,
                    };
                    if let Some(name) = name {
                        std::fs::create_dir_all(dir).expect("screenshot folder");
                        let file = std::path::Path::new(dir).join(format!("{name}.png"));
                        std::fs::write(&file, driver.screenshot().await)
                            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                    }
                }
            }
        }
    }
    driver.quit().await;
    println!("{checked} pages checked");
    assert!(checked >= 50, "{checked} pages checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    server.stop().await;
}
