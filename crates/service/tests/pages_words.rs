//! Every page, for every role, in Chinese: no English words in its text outside codes and ids
//! (`<code>`, `<pre>`, and the language switch marked `lang="en"`); each page has its language,
//! a title, one main landmark and one `h1`, and no script. Also: the household page, the inbox's
//! cards and filters, refusals in Chinese, the review and dead-letter pages, the trace's JSON.

mod common;
mod signed;

use common::Fixture;
use doudi_service::Role;
use signed::Signed;

/// The pages each role opens (paths), from the fixture's own side.
fn pages(fx: &Fixture, role: Role) -> Vec<String> {
    let w = fx.own.warnings[0];
    let hh = &fx.own.households[0];
    let mut p = vec![
        "/".to_string(),
        "/?level=red".into(),
        "/?state=all".into(),
        format!("/warnings/{w}"),
        format!("/households/{hh}"),
        "/warnings/999999".into(),
    ];
    p.extend(fx.role_pages(role));
    p
}

/// Remove every element `tag` (with its content) from `html`, or only those whose opening tag
/// contains `attr`.
fn drop_elements(html: &str, tag: &str, attr: Option<&str>) -> String {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let is_tag = after.starts_with([' ', '>']);
        let head_end = after.find('>').map_or(after.len(), |e| e + 1);
        let matches = is_tag && attr.is_none_or(|a| after[..head_end].contains(a));
        if !matches {
            out.push_str(&rest[..i + open.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        match after.find(&close) {
            Some(j) => rest = &after[j + close.len()..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// The text a person reads on a page, outside codes, ids and the language switch.
fn prose(html: &str) -> String {
    let mut h = drop_elements(html, "style", None);
    h = drop_elements(&h, "title", None);
    h = drop_elements(&h, "code", None);
    h = drop_elements(&h, "pre", None);
    h = drop_elements(&h, "a", Some("lang=\"en\""));
    let mut text = String::new();
    let mut in_tag = false;
    for ch in h.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&amp;", "&").replace("&quot;", "\"")
}

/// Latin words (two letters or more) in `text`; a token with digits in it (an id such as `HA1`,
/// a diagnosis code `C34.9`) is not a word.
fn latin_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
        .filter(|t| !t.chars().any(|c| c.is_ascii_digit()))
        .flat_map(|t| t.split(|c: char| !c.is_ascii_alphabetic()))
        .filter(|w| w.len() >= 2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_scanner_finds_english_and_leaves_codes_alone() {
    let html = "<html><body><p>预警 updated 大塘村HA1号</p><code>HA1 341502001003</code><a href=\"/?lang=en\" lang=\"en\">English</a><pre>{\"a\":1}</pre></body></html>";
    assert_eq!(latin_words(&prose(html)), ["updated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_chinese_page_carries_english_words_and_every_page_has_its_landmarks() {
    let fx = Fixture::new().await;
    let mut failures = Vec::new();
    let mut seen = 0;
    for role in [Role::Officer, Role::Supervisor, Role::Auditor, Role::Admin] {
        let token = fx.token(role).to_string();
        for path in pages(&fx, role) {
            let r = fx.page("GET", &path, Some(&token), None).await;
            assert!(
                r.status.is_success() || r.status.as_u16() == 404,
                "{path} as {}: {} {}",
                role.code(),
                r.status,
                r.body
            );
            seen += 1;
            let words = latin_words(&prose(&r.body));
            if !words.is_empty() {
                failures.push(format!("{path} as {}: {words:?}", role.code()));
            }
            let head = r.body.split("</head>").next().unwrap_or("");
            if head.matches("<title>").count() != 1 {
                failures.push(format!("{path} as {}: no title", role.code()));
            }
            for needle in ["<html lang=\"zh-CN\">", "<main>", "<h1>"] {
                if r.body.matches(needle).count() != 1 {
                    failures.push(format!("{path} as {}: {needle} not once", role.code()));
                }
            }
            if r.body.contains("<script") {
                failures.push(format!("{path} as {}: a script", role.code()));
            }
        }
    }
    // The sign-in page, and a refused sign-in.
    for r in [
        fx.page("GET", "/sign-in", None, None).await,
        fx.page("GET", "/sign-in?expired=1", None, None).await,
        fx.sign_in("doudi_wrong").await,
    ] {
        let words = latin_words(&prose(&r.body));
        if !words.is_empty() {
            failures.push(format!("sign-in: {words:?}"));
        }
        seen += 1;
    }
    assert!(seen > 30, "{seen} pages");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_shows_cards_with_the_head_by_name_for_the_assigned_officer_only() {
    let fx = Fixture::new().await;
    let officer = fx.token(Role::Officer).to_string();
    let r = fx.page("GET", "/", Some(&officer), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("class=\"card "), "{}", r.body);
    assert!(
        r.body.contains("陈桂兰"),
        "the assigned officer sees the head by name: {}",
        r.body
    );
    assert!(r.body.contains("特困人员"), "category in words");
    assert!(
        r.body.contains("东河口镇大塘村"),
        "the village by name: {}",
        r.body
    );
    assert!(r.body.contains("发生于"), "when the hardship happened");
    assert!(
        r.body.contains("到期") || r.body.contains("已超期"),
        "time left"
    );
    assert!(
        !r.body.contains("T17:") && !r.body.contains(".000000Z"),
        "no raw UTC times"
    );
    let reads = fx.store.audit_records(1, 10_000).await.expect("audit");
    assert!(reads.iter().any(|a| a.action == "read_personal_data"
        && a.subject == format!("household:{}", fx.own.households[0])
        && a.detail.contains("\"via\":\"GET /\"")
        && a.detail.contains("\"masked\":false")));
    // The supervisor is not the assigned officer: masked.
    let r = fx.page_get(Role::Supervisor, "/").await;
    assert!(
        !r.body.contains("陈桂兰") && r.body.contains("陈*"),
        "{}",
        r.body
    );
    // The county's overview lists its overdue warnings (none yet: every deadline is ahead).
    let r = fx.page_get(Role::Supervisor, "/regions/341502").await;
    assert!(
        r.body.contains("已超期的预警") && r.body.contains("没有超期的预警"),
        "{}",
        r.body
    );
    assert!(r.body.contains("东河口镇"), "townships by name: {}", r.body);
    // Filters: a level and a state.
    let r = fx
        .page("GET", "/?level=yellow&state=resolved", Some(&officer), None)
        .await;
    assert!(r.body.contains("没有符合条件的预警"), "{}", r.body);
    assert!(r.body.contains("aria-current=\"true\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_household_page_shows_members_address_warnings_and_the_visit_form() {
    let fx = Fixture::new().await;
    let hh = &fx.own.households[0];
    let officer = Signed::new(&fx, fx.token(Role::Officer)).await;
    let r = officer.get(&format!("/households/{hh}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for needle in [
        "陈桂兰",
        "户主",
        "无劳动能力",
        "大塘村HA1号",
        "特困人员",
        "1172.00",
        "确诊重病",
        "id=\"visit\"",
    ] {
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    let id_number = &fx.people[0].id_number;
    assert!(r.body.contains(id_number), "in clear for the officer");
    // The auditor: masked.
    let r = fx
        .page_get(Role::Auditor, &format!("/households/{hh}"))
        .await;
    for hidden in ["陈桂兰", "id=\"visit\""] {
        assert!(!r.body.contains(hidden), "{hidden}: {}", r.body);
    }
    // Another region: as if it did not exist.
    let other = &fx.other.households[0];
    let r = officer.get(&format!("/households/{other}")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("名册中没有这一户"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_moves_are_explained_in_chinese() {
    let fx = Fixture::new().await;
    let me = Signed::new(&fx, fx.token(Role::Officer)).await;
    let w = fx.own.warnings[0];
    let resolve = format!("/warnings/{w}/resolve");
    // Resolve before acknowledging: the transition's refusal, in words.
    let r = me
        .post(
            &resolve,
            &[("disposition", "false_alarm"), ("note", "误报")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("请先签收预警"), "{}", r.body);
    // A visit without a note.
    let r = me
        .post(&format!("/warnings/{w}/visit"), &[("note", " ")])
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("请填写说明"), "{}", r.body);
    // Relief above the township's limit, by an officer: the county decides.
    for (path, note) in [("acknowledge", "已联系"), ("visit", "住院中")] {
        let r = me
            .post(&format!("/warnings/{w}/{path}"), &[("note", note)])
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
    }
    let relief = [
        ("disposition", "relief_granted"),
        ("amount", "99999"),
        ("note", "大额救助"),
    ];
    let r = me.post(&resolve, &relief).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("超过乡镇审批限额") && r.body.contains("县级"),
        "{}",
        r.body
    );
    // The refused attempt is in the history, explained.
    let page = me.get(&format!("/warnings/{w}")).await;
    assert!(page.body.contains("已拒绝"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_dead_letters_and_the_trace_have_pages() {
    let fx = Fixture::new().await;
    let sup = Signed::new(&fx, fx.token(Role::Supervisor)).await;
    let r = sup.get("/review").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains(&format!("/review/{}/decide", fx.own.review_seq)),
        "{}",
        r.body
    );
    assert!(!r
        .body
        .contains(&format!("/review/{}/decide", fx.other.review_seq)));
    assert!(r.body.contains("匹配概率"), "the evidence");
    let decide = format!("/review/{}/decide", fx.own.review_seq);
    let r = sup.post(&decide, &[("link", &fx.own.review_member)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let item = fx
        .store
        .review_item(fx.own.review_seq)
        .await
        .expect("item")
        .expect("kept");
    assert!(item.decision.is_some(), "decided");
    // Dead letters: the auditor reads, the admin replays.
    let r = fx.page_get(Role::Auditor, "/deadletters").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("格式无法读取") && !r.body.contains("id=\"replay\""),
        "{}",
        r.body
    );
    let admin = Signed::new(&fx, fx.token(Role::Admin)).await;
    let r = admin.get("/deadletters").await;
    assert!(r.body.contains("id=\"replay\""));
    let r = admin.post("/deadletters/replay", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = admin.get(r.location()).await;
    assert!(r.body.contains("仍被退回 1 条"), "{}", r.body);
    // The status sentence is the page's own: text put in the address is not shown.
    let r = admin
        .get("/deadletters?done=%E8%AF%B7%E8%87%B4%E7%94%B5")
        .await;
    for hidden in ["请致电", "role=\"status\""] {
        assert!(!r.body.contains(hidden), "{hidden}: {}", r.body);
    }
    // The auditor's trace: a timeline, the JSON one link away.
    let hh = &fx.own.households[0];
    let aud = Signed::new(&fx, fx.token(Role::Auditor)).await;
    let r = aud.get(&format!("/households/{hh}/trace")).await;
    for needle in [
        "原始记录",
        "身份判定",
        "风险评估",
        "规则集",
        "开启预警",
        "?format=json",
    ] {
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    let r = aud
        .get(&format!("/households/{hh}/trace?format=json"))
        .await;
    let v = r.json();
    assert_eq!(v["masked"], false);
    assert!(v["entries"].as_array().is_some_and(|e| !e.is_empty()));
}
