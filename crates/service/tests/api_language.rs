//! The JSON API's messages in the request's language: `Accept-Language` (by its `q` weights)
//! chooses Chinese or English, Chinese by default; the `code` never changes; the answer says its
//! language in `Content-Language`; a message that names a place keeps it.

mod common;

use common::{Fixture, Reply};
use doudi_service::Role;
use serde_json::json;

fn error(r: &Reply) -> (String, String) {
    let v = r.json();
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn content_language(r: &Reply) -> &str {
    r.headers
        .get("content-language")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn has_han(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Resolving a warning nobody acknowledged: refused (409), in each language asked for.
async fn resolve_before_acknowledging(fx: &Fixture, lang: Option<&str>) -> Reply {
    let w = fx.own.warnings[0];
    fx.api_in(
        lang,
        "POST",
        &format!("/api/warnings/{w}/resolve"),
        Some(fx.token(Role::Officer)),
        Some(json!({"disposition": "false_alarm", "note": "x"})),
    )
    .await
}

#[tokio::test]
async fn the_same_refusal_in_chinese_and_english_with_the_same_code() {
    let fx = Fixture::new().await;
    let w = fx.own.warnings[0];
    let zh = resolve_before_acknowledging(&fx, Some("zh-CN")).await;
    let en = resolve_before_acknowledging(&fx, Some("en")).await;
    assert_eq!((zh.status.as_u16(), en.status.as_u16()), (409, 409));
    let ((zh_code, zh_msg), (en_code, en_msg)) = (error(&zh), error(&en));
    assert_eq!(zh_code, "conflict");
    assert_eq!(zh_code, en_code, "the code does not depend on the language");
    assert_eq!(
        zh_msg,
        format!("预警 #{w}：预警当前为「待签收」，不能办结：请先签收预警")
    );
    assert!(en_msg.contains("acknowledge it first"), "{en_msg}");
    assert_eq!(content_language(&zh), "zh-CN");
    assert_eq!(content_language(&en), "en");
    assert_eq!(zh.json()["error"]["where"], en.json()["error"]["where"]);
    fx.finish().await;
}

#[tokio::test]
async fn chinese_without_accept_language_for_any_language_and_for_a_garbled_header() {
    let fx = Fixture::new().await;
    for lang in [None, Some("*"), Some("fr-FR, de;q=0.8"), Some(";;q=x,,")] {
        let r = resolve_before_acknowledging(&fx, lang).await;
        let (code, message) = error(&r);
        assert_eq!(code, "conflict", "{lang:?}");
        assert!(
            has_han(&message) && message.contains("请先签收"),
            "{lang:?}: {message}"
        );
        assert_eq!(content_language(&r), "zh-CN", "{lang:?}");
    }
    // Without a token: 401, in Chinese.
    let r = fx.api_in(None, "GET", "/api/warnings", None, None).await;
    let (code, message) = error(&r);
    assert_eq!(code, "unauthenticated");
    assert!(message.starts_with("没有令牌"), "{message}");
    fx.finish().await;
}

#[tokio::test]
async fn the_q_weights_choose_the_language_not_the_order() {
    let fx = Fixture::new().await;
    for (header, want) in [
        ("zh;q=0.3, en;q=0.9", "en"),
        ("en;q=0.3, zh-TW;q=0.9", "zh-CN"),
        ("fr, en-GB;q=0.5, zh;q=0.4", "en"),
        ("en;q=0, zh;q=0.1", "zh-CN"),
        ("en-US,en;q=0.9", "en"),
    ] {
        let r = resolve_before_acknowledging(&fx, Some(header)).await;
        assert_eq!(content_language(&r), want, "{header}");
        let (code, message) = error(&r);
        assert_eq!(code, "conflict");
        assert_eq!(has_han(&message), want == "zh-CN", "{header}: {message}");
    }
    fx.finish().await;
}

#[tokio::test]
async fn a_chinese_message_keeps_the_place_it_names() {
    let fx = Fixture::new().await;
    let supervisor = fx.token(Role::Supervisor);
    // A silence of 0 hours breaks the document at /hours.
    let body = json!({"household": "H-none", "hours": 0, "reason": "x"});
    let zh = fx
        .api_in(
            None,
            "POST",
            "/api/silences",
            Some(supervisor),
            Some(body.clone()),
        )
        .await;
    let en = fx
        .api_in(
            Some("en"),
            "POST",
            "/api/silences",
            Some(supervisor),
            Some(body),
        )
        .await;
    assert_eq!(zh.status, 400, "{}", zh.body);
    let ((zh_code, zh_msg), (en_code, en_msg)) = (error(&zh), error(&en));
    assert_eq!(
        (zh_code.as_str(), en_code.as_str()),
        ("bad_request", "bad_request")
    );
    assert!(en_msg.contains("at /hours"), "{en_msg}");
    assert!(
        zh_msg.starts_with("请求体不符合") && zh_msg.contains("位置 /hours"),
        "{zh_msg}"
    );
    // A query parameter out of its bounds names the parameter in both.
    let zh = fx
        .api_in(
            None,
            "GET",
            "/api/warnings?level=purple",
            Some(supervisor),
            None,
        )
        .await;
    let (code, msg) = error(&zh);
    assert_eq!(code, "bad_request", "{}", zh.body);
    assert!(has_han(&msg) && msg.contains("level"), "{msg}");
    fx.finish().await;
}

#[tokio::test]
async fn a_refused_push_names_its_lines_in_chinese_as_in_english() {
    let fx = Fixture::new().await;
    let feeder = fx.token(Role::Feeder).to_string();
    let bad_date = common::death_line("P-9").replace("2026-02-28", "2026-02-30");
    let body = format!("{}{bad_date}not json at all\n", common::death_line("P-8"));
    let send = |lang: &'static str| {
        let req = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/api/feeds/{}", common::FEEDER_SOURCE))
            .header("authorization", format!("Bearer {feeder}"))
            .header("content-type", "application/x-ndjson")
            .header("accept-language", lang)
            .body(axum::body::Body::from(body.clone()))
            .expect("request");
        fx.send(req)
    };
    let zh = send("zh-CN,zh;q=0.9").await;
    let en = send("en").await;
    assert_eq!(
        (zh.status.as_u16(), en.status.as_u16()),
        (422, 422),
        "{}",
        zh.body
    );
    let ((zh_code, zh_msg), (en_code, en_msg)) = (error(&zh), error(&en));
    assert_eq!(
        (zh_code.as_str(), en_code.as_str()),
        ("unprocessable", "unprocessable")
    );
    assert!(
        en_msg.contains("line 2: invalid_field") && en_msg.contains("line 3: not_json"),
        "{en_msg}"
    );
    assert!(
        zh_msg.starts_with("整批拒收，未存储任何数据：2 行被拒："),
        "{zh_msg}"
    );
    assert!(
        zh_msg.contains("第 2 行：invalid_field") && zh_msg.contains("第 3 行：not_json"),
        "{zh_msg}"
    );
    assert!(!zh_msg.contains("2026-02-30"), "never a value: {zh_msg}");
    fx.finish().await;
}
