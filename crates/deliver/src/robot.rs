//! What a chat robot (WeCom, DingTalk) posts to an officer's group: one notice, or a digest of
//! several, as one markdown message in Chinese; and how a robot's answer is read.
//!
//! A group is read by several people, so a message says less than a webhook's payload: the level
//! and what happened, the household (its id and the head's name masked, `陈＊＊`; never an ID
//! number or an address), the village's name, the top reason, the deadline in local time (the
//! locality's zone, Asia/Shanghai by default) and the link to the warning, where the officer signs
//! in to see the rest.
//!
//! Only markdown both robots render is used: `###` headings, `**bold**`, `>` quotes and
//! `[text](link)` links. Text from records is kept from being read as markdown (`*`, `[`, `]`,
//! `<`, `>` and backquotes become their full-width forms).
//!
//! The message is a function of the notices alone (no clock in it), so a retry posts the same
//! text. A digest holds as many notices as fit in [`MAX_MESSAGE_BYTES`]; the rest wait for the
//! next message (nothing is dropped).

use chrono::DateTime;
use chrono_tz::Tz;
use doudi_model::Level;
use serde::Deserialize;

use doudi_warnings::explain::Ask;

use crate::payload::Item;

/// Most bytes of markdown in one message: WeCom's limit for a markdown message's `content`
/// ("最长不超过4096个字节", <https://developer.work.weixin.qq.com/document/path/91770>);
/// DingTalk's is larger, the same bound is used for both.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Most characters of the top reason shown.
const MAX_REASON_CHARS: usize = 100;

/// Messages a robot accepts a minute: 20 for both ("每个机器人发送的消息不能超过20条/分钟",
/// WeCom, same page; DingTalk: "每个机器人每分钟最多发送20条消息到群里，如果超过20条，会限流10分钟",
/// <https://open.dingtalk.com/document/robots/custom-robot-access>). A robot's quota (shared by the
/// officers who read the same robot, told apart by the file holding its URL) is the smaller of
/// this and `deliver.quota_per_minute`.
pub const ROBOT_MESSAGES_PER_MINUTE: u32 = 20;

/// How line breaks are written: WeCom takes `\n`; DingTalk's markdown needs two spaces before a
/// `\n` to break a line inside a paragraph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Wecom,
    Dingtalk,
}

impl Flavor {
    fn newline(self) -> &'static str {
        match self {
            Flavor::Wecom => "\n",
            Flavor::Dingtalk => "  \n",
        }
    }
}

/// One markdown message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// A short title (DingTalk shows it in the conversation list): `红色预警 · 户 H0`.
    pub title: String,
    /// The markdown.
    pub text: String,
    /// How many of the items given it carries (the first ones; at least one).
    pub carried: usize,
}

/// The Chinese an officer reads for a notice's kind.
pub fn kind_zh(kind: &str) -> &str {
    match kind {
        "opened" => "新预警",
        "raised" => "预警升级",
        "escalated" => "超时未确认，已上报",
        "overdue" => "已超过办理期限",
        "reminder" => "提醒：仍待处理",
        other => other,
    }
}

/// `红色预警` for a level code (`预警` when the code is unknown or `none`).
fn level_zh(code: &str) -> String {
    match Level::from_code(code) {
        Some(Level::None) | None => "预警".to_string(),
        Some(l) => format!("{}预警", l.name_zh()),
    }
}

/// Text from a record, kept from being read as markdown.
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' => '＊',
            '[' => '［',
            ']' => '］',
            '<' => '＜',
            '>' => '＞',
            '`' => '｀',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .collect()
}

/// The first `max` characters of `text`, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// A deadline (RFC 3339) in `zone`, to the minute: `2026-02-14 10:05`; as stored if unreadable.
pub fn local_time(rfc3339: &str, zone: Tz) -> String {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// `H0（户主 陈**）`: the household id and its head's masked name (else the first member's).
fn household(i: &Item) -> String {
    let who = i
        .members
        .iter()
        .find(|m| m.relation.as_deref() == Some("head"))
        .map(|m| format!("户主 {}", m.name))
        .or_else(|| i.members.first().map(|m| m.name.clone()));
    match who {
        Some(w) => format!("{}（{}）", plain(&i.household.household_id), plain(&w)),
        None => plain(&i.household.household_id),
    }
}

fn place(i: &Item) -> String {
    plain(
        i.household
            .region_name
            .as_deref()
            .unwrap_or(&i.household.region_code),
    )
}

fn reason(i: &Item) -> String {
    match i.reasons.first() {
        Some(r) => cut(&plain(&r.reason_zh), MAX_REASON_CHARS),
        None => "见预警页面".to_string(),
    }
}

fn link(i: &Item) -> String {
    format!(
        "[查看预警 #{}]({})",
        i.warning.warning_id,
        i.warning.link.replace(['(', ')', ' '], "")
    )
}

/// A warning whose findings no longer count asks to verify and close, not to act.
fn asks_to_verify(i: &Item) -> bool {
    i.ask == Some(Ask::VerifyAndClose)
}

/// The lines of one notice alone.
fn single(i: &Item, zone: Tz) -> Vec<String> {
    let mut lines = vec![
        format!(
            "### {} · {}",
            level_zh(&i.warning.level),
            kind_zh(&i.notice)
        ),
        format!("> **户**：{}", household(i)),
        format!("> **地点**：{}", place(i)),
        format!("> **原因**：{}", reason(i)),
        format!(
            "> **期限**：{} 前办理",
            local_time(&i.warning.deadline, zone)
        ),
    ];
    if !i.note_zh.is_empty() {
        lines.push(format!(
            "> **说明**：{}",
            cut(&plain(&i.note_zh), MAX_REASON_CHARS)
        ));
    }
    if asks_to_verify(i) {
        lines.push("> **要求**：风险信号已不再成立，请核实后关闭".to_string());
    }
    lines.extend([String::new(), link(i)]);
    lines
}

/// The block of one notice in a digest.
fn entry(n: usize, i: &Item, zone: Tz) -> Vec<String> {
    vec![
        format!(
            "**{n}. {} · {}** 户 {} · {}",
            level_zh(&i.warning.level),
            kind_zh(&i.notice),
            household(i),
            place(i)
        ),
        format!(
            "> 原因：{}；期限：{} 前{}{}",
            reason(i),
            local_time(&i.warning.deadline, zone),
            if i.note_zh.is_empty() {
                String::new()
            } else {
                format!("；{}", cut(&plain(&i.note_zh), MAX_REASON_CHARS))
            },
            if asks_to_verify(i) {
                "；请核实后关闭"
            } else {
                ""
            }
        ),
        link(i),
        String::new(),
    ]
}

fn join(lines: &[String], flavor: Flavor) -> String {
    lines.join(flavor.newline())
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn fit(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The message for `items` (in notice order, at least one): one notice as it is, several as a
/// digest of as many as fit in `max_bytes` (the first ones; [`Message::carried`] says how many).
pub fn message(items: &[Item], zone: Tz, flavor: Flavor, max_bytes: usize) -> Message {
    let Some(first) = items.first() else {
        return Message {
            title: "预警".into(),
            text: String::new(),
            carried: 0,
        };
    };
    if items.len() == 1 {
        return Message {
            title: format!(
                "{} · 户 {}",
                level_zh(&first.warning.level),
                plain(&first.household.household_id)
            ),
            text: fit(join(&single(first, zone), flavor), max_bytes),
            carried: 1,
        };
    }
    let head = |n: usize| {
        vec![
            format!("### 预警汇总：{n} 条待处理"),
            "> 通知较多，合并为一条发送".to_string(),
            String::new(),
        ]
    };
    let blocks: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(k, i)| join(&entry(k + 1, i, zone), flavor))
        .collect();
    let sep = flavor.newline().len();
    // The most notices whose blocks fit with the heading that counts them.
    let mut carried = 1;
    let mut size = 0;
    for (k, b) in blocks.iter().enumerate() {
        size += b.len() + sep;
        if join(&head(k + 1), flavor).len() + sep + size > max_bytes {
            break;
        }
        carried = k + 1;
    }
    let mut lines = head(carried);
    lines.extend(blocks.into_iter().take(carried));
    Message {
        title: format!("预警汇总：{carried} 条待处理"),
        text: fit(join(&lines, flavor), max_bytes),
        carried,
    }
}

/// A robot's answer: HTTP 200 with `{"errcode":0,"errmsg":"ok"}` when the message was taken.
#[derive(Deserialize)]
struct RobotAnswer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// What became of a post to a robot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Not taken: why (for the delivery log: the HTTP status or the robot's `errcode` and
    /// `errmsg`, never the URL), and whether a retry may help.
    Refused {
        error: String,
        retryable: bool,
    },
}

/// Read a robot's answer. A non-zero `errcode` (a bad signature, a revoked key, too many messages
/// a minute) is a failed attempt, retried with backoff like a 5xx: an operator may fix the files
/// meanwhile, and a throttled robot takes messages again later.
pub fn outcome(status: u16, body: &[u8]) -> Outcome {
    let answer = serde_json::from_slice::<RobotAnswer>(body).ok();
    if !(200..300).contains(&status) {
        let error = match answer {
            Some(a) => format!("HTTP {status}, errcode {}", a.errcode),
            None => format!("HTTP {status}"),
        };
        let retryable = status == 408 || status == 425 || status == 429 || status >= 500;
        return Outcome::Refused { error, retryable };
    }
    match answer {
        Some(a) if a.errcode == 0 => Outcome::Delivered,
        Some(a) => Outcome::Refused {
            error: format!(
                "errcode {}: {}",
                a.errcode,
                cut(&a.errmsg.replace(char::is_control, " "), 120)
            ),
            retryable: true,
        },
        None => Outcome::Refused {
            error: format!("HTTP {status} without the robot's answer ({{\"errcode\":0}} expected)"),
            retryable: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{item, tests::pending};

    fn items(n: i64) -> Vec<Item> {
        (1..=n)
            .map(|i| {
                let mut it = item(&pending(i, &format!("H{i}"), "li"), "https://doudi.example");
                it.household.region_name = Some("东河口镇大塘村".into());
                it
            })
            .collect()
    }

    #[test]
    fn one_notice_says_level_household_masked_place_reason_local_deadline_and_link() {
        let m = message(&items(1), chrono_tz::Asia::Shanghai, Flavor::Wecom, 4096);
        assert_eq!(m.carried, 1);
        assert_eq!(m.title, "红色预警 · 户 H1");
        assert_eq!(
            m.text,
            "### 红色预警 · 新预警\n\
             > **户**：H1（户主 陈＊＊）\n\
             > **地点**：东河口镇大塘村\n\
             > **原因**：2026-02-12 确诊重病（肺恶性肿瘤）\n\
             > **期限**：2026-02-14 10:05 前办理\n\
             \n\
             [查看预警 #41](https://doudi.example/warnings/41)"
        );
        assert!(!m.text.contains("34240119490127046X") && !m.text.contains("陈桂兰"));
        assert!(!m.text.contains("大塘村1号"), "no address in a group");
        // DingTalk breaks lines with two spaces before the newline; the deadline follows the zone.
        let m = message(&items(1), chrono_tz::UTC, Flavor::Dingtalk, 4096);
        assert!(
            m.text
                .contains("  \n> **期限**：2026-02-14 02:05 前办理  \n"),
            "{}",
            m.text
        );
    }

    #[test]
    fn an_escalation_says_why_in_chinese_in_the_message_and_both_languages_in_the_item() {
        let mut p = pending(1, "H1", "li");
        p.kind = "escalated".into();
        p.note = "not acknowledged within 4 h".into();
        let mut it = item(&p, "https://doudi.example");
        it.household.region_name = Some("东河口镇大塘村".into());
        assert_eq!(it.note_zh, "超过 4 小时无人签收");
        assert_eq!(it.note_en, "not acknowledged within 4 h");
        let m = message(
            &[it.clone()],
            chrono_tz::Asia::Shanghai,
            Flavor::Wecom,
            4096,
        );
        assert!(
            m.text.starts_with("### 红色预警 · 超时未确认，已上报\n"),
            "{}",
            m.text
        );
        assert!(
            m.text.contains("> **说明**：超过 4 小时无人签收\n"),
            "{}",
            m.text
        );
        assert!(!m.text.contains("acknowledged"), "{}", m.text);
        let mut other = it.clone();
        other.note_zh = "仍在等待处理".into();
        let m = message(&[it, other], chrono_tz::Asia::Shanghai, Flavor::Wecom, 4096);
        assert!(m.text.contains("；超过 4 小时无人签收"), "{}", m.text);
        assert!(m.text.contains("；仍在等待处理"), "{}", m.text);
    }

    #[test]
    fn a_digest_carries_as_many_notices_as_fit_and_counts_them() {
        let all = items(40);
        let m = message(
            &all,
            chrono_tz::Asia::Shanghai,
            Flavor::Wecom,
            MAX_MESSAGE_BYTES,
        );
        assert!(m.text.len() <= MAX_MESSAGE_BYTES);
        assert!(m.carried > 1 && m.carried < 40, "{}", m.carried);
        assert!(m
            .text
            .starts_with(&format!("### 预警汇总：{} 条待处理", m.carried)));
        assert_eq!(m.title, format!("预警汇总：{} 条待处理", m.carried));
        assert_eq!(m.text.matches("[查看预警 #").count(), m.carried);
        // The rest would fit in the next one; a small digest carries everything.
        let m = message(&all[..3], chrono_tz::Asia::Shanghai, Flavor::Dingtalk, 4096);
        assert_eq!(m.carried, 3);
        assert!(m
            .text
            .contains("**3. 红色预警 · 新预警** 户 H3（户主 陈＊＊） · 东河口镇大塘村"));
    }

    #[test]
    fn record_text_is_not_read_as_markdown_and_long_reasons_are_cut() {
        let mut it = items(1).remove(0);
        it.reasons[0].reason_zh = format!("**[x](http://evil)** <b>{}", "很".repeat(200));
        it.household.region_name = None;
        let m = message(&[it], chrono_tz::Asia::Shanghai, Flavor::Wecom, 4096);
        assert!(
            m.text.contains("＊＊［x］(http://evil)＊＊ ＜b＞"),
            "{}",
            m.text
        );
        assert!(m.text.contains("很…"), "{}", m.text);
        assert!(
            m.text.contains("**地点**：341502001003"),
            "the code without a name"
        );
        let m = message(&items(1), chrono_tz::Asia::Shanghai, Flavor::Wecom, 50);
        assert!(m.text.len() <= 50);
    }

    #[test]
    fn a_warning_whose_findings_no_longer_count_asks_to_verify_and_close() {
        let mut it = items(1).remove(0);
        it.ask = Some(Ask::VerifyAndClose);
        let m = message(
            std::slice::from_ref(&it),
            chrono_tz::Asia::Shanghai,
            Flavor::Wecom,
            4096,
        );
        assert!(
            m.text
                .contains("\n> **要求**：风险信号已不再成立，请核实后关闭\n\n[查看预警"),
            "{}",
            m.text
        );
        let m = message(
            &[it.clone(), it],
            chrono_tz::Asia::Shanghai,
            Flavor::Wecom,
            4096,
        );
        assert_eq!(m.text.matches("；请核实后关闭").count(), 2, "{}", m.text);
        let m = message(&items(1), chrono_tz::Asia::Shanghai, Flavor::Wecom, 4096);
        assert!(
            !m.text.contains("核实后关闭"),
            "a warning to act on says so by its level"
        );
    }

    #[test]
    fn a_robot_answer_is_delivered_only_with_errcode_zero() {
        assert_eq!(
            outcome(200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Outcome::Delivered
        );
        // Refused: whether a retry may help, and the error where the case pins it.
        let refused: [(u16, &[u8], bool, Option<&str>); 4] = [
            (
                200,
                br#"{"errcode":310000,"errmsg":"sign not match"}"#,
                true,
                Some("errcode 310000: sign not match"),
            ),
            (200, b"<html>", true, None),
            (
                404,
                br#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
                false,
                Some("HTTP 404, errcode 93000"),
            ),
            (503, b"", true, None),
        ];
        for (status, body, retry, pinned) in refused {
            match outcome(status, body) {
                Outcome::Refused { error, retryable } => {
                    assert_eq!(retryable, retry, "{status} {error}");
                    if let Some(want) = pinned {
                        assert_eq!(error, want);
                    }
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }
}
