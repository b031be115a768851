//! The officers' and auditors' pages, in process: sign-in cookie, inbox limited to the township,
//! the warning page (masked members, reasons, forms), forms refused without the session's form
//! token, escaping, the language switch, the region chart and the auditor's trace.

mod common;
mod signed;

use common::Fixture;
use doudi_service::{form_token, Role};
use serde_json::json;
use signed::{header, personal_reads, Signed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_http_only_cookie_and_a_bad_token_is_refused() {
    let fx = Fixture::new().await;
    let token = fx.token(Role::Officer).to_string();
    let r = fx
        .page("POST", "/sign-in", None, Some(&[("token", &token)]))
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/");
    let cookie = header(&r, "set-cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let r = fx
        .page("POST", "/sign-in", None, Some(&[("token", "doudi_wrong")]))
        .await;
    assert_eq!(r.status, 401);
    // Explained in the page's language (Chinese by default).
    assert!(r.body.contains("令牌无效"), "{}", r.body);
    let r = fx.page("GET", "/", None, None).await;
    assert_eq!((r.status.as_u16(), r.location()), (303, "/sign-in"));
    let r = fx.page("GET", "/", Some("doudi_wrong"), None).await;
    assert_eq!(
        (r.status.as_u16(), r.location()),
        (303, "/sign-in?expired=1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_shows_the_townships_warnings_most_urgent_first_with_time_left() {
    let fx = Fixture::new().await;
    let r = fx.page_get(Role::Officer, "/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for w in &fx.own.warnings {
        assert!(
            r.body.contains(&format!("href=\"/warnings/{w}\"")),
            "{}",
            r.body
        );
    }
    for w in &fx.other.warnings {
        assert!(!r.body.contains(&format!("href=\"/warnings/{w}\"")));
    }
    assert!(
        r.body.contains("后到期") || r.body.contains("已超期"),
        "{}",
        r.body
    );
    let csp = header(&r, "content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    // English on request, remembered in a cookie.
    let r = fx.page_get(Role::Officer, "/?lang=en").await;
    assert!(r.body.contains("Inbox") && r.body.contains("lang=\"en\""));
    let set = header(&r, "set-cookie");
    assert!(set.starts_with("doudi_lang=en"), "{set}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warning_page_masks_members_escapes_notes_and_needs_the_form_token() {
    let fx = Fixture::new().await;
    let token = fx.token(Role::Officer).to_string();
    let w = fx.own.warnings[0];
    let page = fx
        .page("GET", &format!("/warnings/{w}"), Some(&token), None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The officer the warning is assigned to sees whom to visit (the read audited); everyone
    // else sees the members masked.
    assert!(page.body.contains("陈桂兰"), "{}", page.body);
    for p in &fx.people[1..] {
        assert!(!page.body.contains(&p.id_number) && !page.body.contains(p.name));
    }
    let sup = fx
        .page_get(Role::Supervisor, &format!("/warnings/{w}"))
        .await;
    for p in &fx.people {
        assert!(!sup.body.contains(&p.id_number) && !sup.body.contains(p.name));
    }
    assert!(sup.body.contains("陈*"), "members masked: {}", sup.body);
    assert!(page.body.contains("预警原因") && page.body.contains("id=\"acknowledge\""));
    let csrf = fx.csrf(&token).await;
    assert!(page.body.contains(&csrf), "the forms carry the form token");
    assert_ne!(
        csrf,
        form_token(&token),
        "derived from the session, not the API token"
    );
    let me = Signed::new(&fx, &token).await;
    let ack = format!("/warnings/{w}/acknowledge");
    // Without the form token (a forged cross-site post): refused, nothing moves.
    let r = me.form(&ack, &[("note", "x")]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let other = form_token("doudi_other");
    let r = me.form(&ack, &[("csrf", &other), ("note", "x")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        fx.store
            .warning_detail(w)
            .await
            .expect("d")
            .expect("w")
            .warning
            .status,
        doudi_model::WarningStatus::Open
    );
    // From another site (the browser names it in Origin): refused too.
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/warnings/{w}/acknowledge"))
        .header(
            "cookie",
            format!("doudi_session={}", fx.session(&token).await),
        )
        .header("origin", "https://evil.example")
        .header("host", "localhost:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(common::encode_form(&[(
            "csrf", &csrf,
        )])))
        .expect("request");
    assert_eq!(fx.send(req).await.status, 403);
    // With it: moved, and back to the page.
    let r = me
        .post(&ack, &[("note", "<script>alert(1)</script>")])
        .await;
    assert_eq!(
        (r.status.as_u16(), r.location()),
        (303, format!("/warnings/{w}?done=acknowledged").as_str())
    );
    let page = me.get(&format!("/warnings/{w}?done=acknowledged")).await;
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.body.contains("已记录"));
    // A visit without a reason is refused with the rule's words.
    let r = me
        .post(&format!("/warnings/{w}/visit"), &[("note", " ")])
        .await;
    // The use case's rule, not the form's shape: 422 (was 400).
    assert_eq!(r.status, 422);
    assert!(r.body.contains("请填写说明"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_county_overview_lists_the_escalated_warnings_with_their_step_and_since_when() {
    let fx = Fixture::new().await;
    let supervisor = Signed::new(&fx, fx.token(Role::Supervisor)).await;
    let r = supervisor.get("/regions/341502").await;
    assert!(r.body.contains("已上报的预警 (0)"), "{}", r.body);
    assert!(r.body.contains("没有上报的预警。"), "{}", r.body);
    let w = fx.own.warnings[0];
    let at = chrono::Utc::now() - chrono::TimeDelta::hours(3);
    fx.escalate(w, 2, at).await;
    let r = supervisor.get("/regions/341502").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r
        .body
        .split("已上报的预警 (1)")
        .nth(1)
        .unwrap_or_else(|| panic!("no escalated list: {}", r.body));
    assert!(list.contains(&format!("/warnings/{w}")), "{list}");
    assert!(list.contains("无人签收，已逐级上报 2 级"), "{list}");
    assert!(list.contains("3 小时前"), "{list}");
    let r = supervisor.get("/regions/341502?lang=en").await;
    assert!(
        r.body.contains("not acknowledged: sent 2 steps up"),
        "{}",
        r.body
    );
    // The county outside the supervisor's sees none of it.
    assert!(!fx.other.warnings.contains(&w));
    // The warning's history says whom it was sent to, and why, in Chinese.
    let r = supervisor.get(&format!("/warnings/{w}")).await;
    assert!(
        r.body.contains("通知 s-341502：超过 4 小时无人签收"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_page_charts_warnings_and_the_auditor_trace_is_in_clear_and_audited() {
    let fx = Fixture::new().await;
    let r = fx.page_get(Role::Supervisor, "/regions/341502").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<svg") && r.body.contains("<rect"),
        "{}",
        r.body
    );
    assert!(r.body.contains("/regions/341502001"));
    let r = fx.page_get(Role::Officer, "/regions/341502").await;
    // Outside the officer's township: 404, as for a region that is not there (was 403).
    assert_eq!(
        r.status, 404,
        "the county is wider than the officer's township"
    );
    assert!(!r.body.contains("outside"), "{}", r.body);
    let (hh, id_number) = (&fx.own.households[0], &fx.people[0].id_number);
    let trace = format!("/households/{hh}/trace");
    let r = fx.page_get(Role::Auditor, &trace).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(id_number),
        "the auditor sees the record as received"
    );
    let r = fx.page_get(Role::Officer, &trace).await;
    assert!(!r.body.contains(id_number));
    let reads: Vec<serde_json::Value> = personal_reads(&fx, 10_000)
        .await
        .iter()
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    assert!(reads.contains(&json!({"via": "GET /households/{id}/trace", "masked": false, "role": "auditor", "token_id": 3})), "{reads:?}");
}
