//! The words and times of the pages: the two languages (Chinese first, English with `?lang=en` or
//! the `doudi_lang` cookie), every code the pages show in words (levels, statuses, relations, work
//! capacity, categories, dispositions, history actions, event kinds, roles, link outcomes), the
//! refusals of the use cases in Chinese, and times in the locality's zone to the minute with
//! relative times ("3 小时后到期", "8 个月前").

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use doudi_model::{Disposition, Level, WarningStatus};
use doudi_warnings::lifecycle::MoveError;

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The language of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// The cookie remembering the language.
pub const LANG_COOKIE: &str = "doudi_lang";

impl Lang {
    /// From `?lang=` (wins) or the cookie; Chinese by default. Also says whether `?lang=` was
    /// given (then the cookie is set).
    pub fn pick(query_lang: Option<&str>, headers: &HeaderMap) -> (Lang, bool) {
        let parse = |s: &str| match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        };
        if let Some(l) = query_lang.and_then(parse) {
            return (l, true);
        }
        (
            cookie(headers, LANG_COOKIE)
                .and_then(parse)
                .unwrap_or(Lang::Zh),
            false,
        )
    }

    /// The language of an API answer, from `Accept-Language` (RFC 9110: the tags in order of
    /// their `q`, equal weights in the order given; `q=0` is "not this"): the first `zh…` or
    /// `en…` tag wins; Chinese for `*`, for none of the two, and for a missing or garbled header.
    pub fn from_accept_language(headers: &HeaderMap) -> Lang {
        let mut tags: Vec<(u16, usize, &str)> = Vec::new();
        let values = headers
            .get_all(axum::http::header::ACCEPT_LANGUAGE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        for item in values.flat_map(|v| v.split(',')) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let mut q = Some(1000u16);
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = quality(v.trim());
                    }
                }
            }
            if let Some(q) = q.filter(|q| *q > 0) {
                let order = tags.len();
                tags.push((q, order, tag));
            }
        }
        tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, tag) in tags {
            let primary = tag.split('-').next().unwrap_or_default();
            if primary.eq_ignore_ascii_case("zh") || tag == "*" {
                return Lang::Zh;
            }
            if primary.eq_ignore_ascii_case("en") {
                return Lang::En;
            }
        }
        Lang::Zh
    }

    /// `zh` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The page's `lang` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// The other language (the switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }

    /// A level's name.
    pub fn level(self, level: Level) -> &'static str {
        match level {
            Level::Red => self.t("红色", "red"),
            Level::Orange => self.t("橙色", "orange"),
            Level::Yellow => self.t("黄色", "yellow"),
            Level::None => self.t("无", "none"),
        }
    }

    /// A warning status's name.
    pub fn status(self, status: WarningStatus) -> &'static str {
        match status {
            WarningStatus::Open => self.t("待签收", "open"),
            WarningStatus::Acknowledged => self.t("已签收", "acknowledged"),
            WarningStatus::Visited => self.t("已入户核查", "visited"),
            WarningStatus::Resolved => self.t("已办结", "resolved"),
            WarningStatus::Withdrawn => self.t("已撤回", "withdrawn"),
        }
    }

    /// A household category's name (the code itself if unknown).
    pub fn category(self, code: &str) -> String {
        match doudi_model::Category::from_code(code) {
            Some(c) if self == Lang::Zh => c.name_zh().to_string(),
            Some(c) => c.code().replace('_', " "),
            None => code.to_string(),
        }
    }

    /// A member's relation to the head.
    pub fn relation(self, code: &str) -> String {
        let (zh, en) = match code {
            "head" => ("户主", "head"),
            "spouse" => ("配偶", "spouse"),
            "child" => ("子女", "child"),
            "parent" => ("父母", "parent"),
            "grandchild" => ("孙子女", "grandchild"),
            "grandparent" => ("祖父母", "grandparent"),
            "sibling" => ("兄弟姐妹", "sibling"),
            "other" => ("其他", "other"),
            _ => ("其他", "other"),
        };
        self.t(zh, en).to_string()
    }

    /// Work capacity (劳动能力).
    pub fn work_capacity(self, code: &str) -> &'static str {
        match code {
            "full" => self.t("有劳动能力", "able to work"),
            "partial" => self.t("部分丧失劳动能力", "partly able to work"),
            "none" => self.t("无劳动能力", "unable to work"),
            _ => self.t("不详", "unknown"),
        }
    }

    /// Sex.
    pub fn sex(self, code: &str) -> &'static str {
        match code {
            "male" => self.t("男", "male"),
            "female" => self.t("女", "female"),
            _ => self.t("不详", "unknown"),
        }
    }

    /// A disability grade (1 most severe), or none.
    pub fn disability(self, grade: Option<u64>) -> String {
        match grade {
            Some(g) => match self {
                Lang::Zh => format!(
                    "残疾{}级",
                    ["一", "二", "三", "四"]
                        .get(g.saturating_sub(1) as usize)
                        .unwrap_or(&"")
                ),
                Lang::En => format!("disability grade {g}"),
            },
            None => self.t("无残疾", "no disability").to_string(),
        }
    }

    /// A linkage comparison's level in words (the code itself when unknown).
    pub fn comparison(self, code: &str) -> Option<&'static str> {
        Some(match code {
            "exact" => self.t("一致", "exact"),
            "village" => self.t("同村", "same village"),
            "township" => self.t("同乡镇", "same township"),
            "county" => self.t("同县", "same county"),
            "close" | "near" | "similar" => self.t("相近", "close"),
            "partial" => self.t("部分一致", "partial"),
            "transposed" => self.t("位置颠倒", "transposed"),
            "different" | "mismatch" | "disagree" => self.t("不一致", "different"),
            _ => return None,
        })
    }

    /// A disposition in words, with its amount, category or department.
    pub fn disposition(self, d: &Disposition) -> String {
        match d {
            Disposition::ReliefGranted { amount } => match self {
                Lang::Zh => format!("给予临时救助 {} 元", yuan(amount.fen())),
                Lang::En => format!("temporary relief of {} yuan granted", yuan(amount.fen())),
            },
            Disposition::Enrolled { category } => match self {
                Lang::Zh => format!("纳入{}", category.name_zh()),
                Lang::En => format!("enrolled as {}", category.code().replace('_', " ")),
            },
            Disposition::Referred { department } => match self {
                Lang::Zh => format!("转介{department}"),
                Lang::En => format!("referred to {department}"),
            },
            Disposition::RiskCleared => self.t("风险消除", "risk cleared").into(),
            Disposition::FalseAlarm => self.t("误报", "false alarm").into(),
        }
    }

    /// An action of a warning's history (`opened`, `acknowledge`, …).
    pub fn action(self, code: &str) -> &'static str {
        match code {
            "opened" => self.t("开启预警", "opened"),
            "raised" => self.t("升级", "raised"),
            "updated" => self.t("更新", "updated"),
            "acknowledge" => self.t("签收", "acknowledged"),
            "visit" => self.t("入户核查", "visited"),
            "resolve" => self.t("办结", "resolved"),
            "escalated" => self.t("逐级上报", "escalated"),
            "overdue" => self.t("超期上报", "overdue"),
            "reminder" => self.t("提醒", "reminder"),
            "withdrawn" => self.t("撤回", "withdrawn"),
            "rederived" => self.t("按迟到记录重新计算", "re-derived after a late record"),
            "reopened" => self.t("重新开启", "reopened"),
            _ => self.t("其他变更", "other change"),
        }
    }

    /// The note of a history line: the escalation tick's (`to li: not acknowledged within 2 h`)
    /// in words; a person's note as written.
    pub fn history_note(self, action: &str, note: &str) -> String {
        if self == Lang::En || !matches!(action, "escalated" | "overdue" | "reminder") {
            return note.to_string();
        }
        use doudi_warnings::escalation::NoticeNote;
        match note.strip_prefix("to ").and_then(|n| n.split_once(": ")) {
            Some((recipient, why)) => format!("通知 {recipient}：{}", NoticeNote::zh_of(why)),
            None => NoticeNote::zh_of(note),
        }
    }

    /// Who made a change: the pipeline in words, an officer by id.
    pub fn actor(self, actor: &str) -> String {
        match actor {
            "pipeline" => self.t("系统（数据比对）", "the pipeline").into(),
            a => a.to_string(),
        }
    }

    /// A role's name.
    pub fn role(self, role: crate::Role) -> &'static str {
        match role {
            crate::Role::Officer => self.t("乡镇干部", "township officer"),
            crate::Role::Supervisor => self.t("县级督办", "supervisor"),
            crate::Role::Auditor => self.t("审计", "auditor"),
            crate::Role::Admin => self.t("管理员", "administrator"),
            crate::Role::Feeder => self.t("数据推送程序", "feeder"),
        }
    }

    /// A source department's name.
    pub fn source(self, code: &str) -> &'static str {
        match code {
            "health_insurance" => self.t("医保", "health insurance"),
            "employment" => self.t("人社", "employment"),
            "housing" => self.t("住建", "housing"),
            "civil_registry" => self.t("民政户籍", "civil registry"),
            _ => self.t("其他部门", "another department"),
        }
    }

    /// An event kind in words.
    pub fn kind(self, code: &str) -> &'static str {
        match code {
            "settlement" => self.t("医疗费用结算", "medical bill settled"),
            "serious_illness_diagnosed" => self.t("确诊重病", "serious illness diagnosed"),
            "job_lost" => self.t("失业", "job lost"),
            "unemployment_registered" => self.t("失业登记", "registered unemployed"),
            "contributions_stopped" => self.t("社保断缴", "contributions stopped"),
            "job_started" => self.t("就业", "job started"),
            "wage_changed" => self.t("工资变动", "wage changed"),
            "property_registered" => self.t("不动产登记", "property registered"),
            "dangerous_house_appraised" => self.t("危房鉴定", "dangerous house appraised"),
            "disaster_damage" => self.t("灾害损失", "disaster damage"),
            "relocated" => self.t("搬迁安置", "relocated"),
            "birth" => self.t("出生", "birth"),
            "death" => self.t("死亡", "death"),
            "marriage" => self.t("结婚", "marriage"),
            "divorce" => self.t("离婚", "divorce"),
            "household_moved" => self.t("户籍迁移", "household moved"),
            "disability_certified" => self.t("残疾认定", "disability certified"),
            _ => self.t("其他记录", "another record"),
        }
    }

    /// A link outcome (identity decision) in words.
    pub fn outcome(self, code: &str) -> &'static str {
        match code {
            "linked" => self.t("已确认身份", "linked"),
            "review" => self.t("待人工确认", "waiting for review"),
            "unmatched" => self.t("未匹配", "unmatched"),
            _ => self.t("不详", "unknown"),
        }
    }

    /// A register change (`added`, `changed`, `removed`).
    pub fn register_change(self, code: &str) -> &'static str {
        match code {
            "added" | "new" | "insert" => self.t("登记入册", "added to the register"),
            "removed" | "deleted" => self.t("移出名册", "removed from the register"),
            _ => self.t("登记信息变更", "register record changed"),
        }
    }

    /// A finding's status.
    pub fn finding_status(self, code: &str) -> &'static str {
        match code {
            "open" => self.t("待处理", "open"),
            "closed" => self.t("已关闭", "closed"),
            _ => self.t("其他", "other"),
        }
    }
}

/// A `q` weight (`0` to `1`, at most three decimals) in thousandths; `None` if garbled.
fn quality(v: &str) -> Option<u16> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Fen as yuan (`1500.50`).
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.unsigned_abs();
    format!("{sign}{}.{:02}", f / 100, f % 100)
}

/// Times as the locality reads them: in its zone, to the minute, and relative to now.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub tz: Tz,
    pub now: DateTime<Utc>,
    pub lang: Lang,
}

impl Clock {
    /// A clock at `now` in zone `tz`.
    pub fn new(tz: Tz, now: DateTime<Utc>, lang: Lang) -> Clock {
        Clock { tz, now, lang }
    }

    /// `2026-12-08 01:28` in the locality's zone.
    pub fn at(&self, t: &DateTime<Utc>) -> String {
        t.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    /// A day in the locality's zone (`2026-12-08`).
    pub fn day(&self, t: &DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).format("%Y-%m-%d").to_string()
    }

    /// How long ago or ahead, in the largest unit that fits ("8 个月前", "3 小时后").
    pub fn relative(&self, t: &DateTime<Utc>) -> String {
        let d = *t - self.now;
        let ahead = d.num_seconds() >= 0;
        let span = span(self.lang, d.num_minutes().unsigned_abs());
        match (self.lang, ahead) {
            (_, _) if d.num_minutes().abs() < 1 => self.lang.t("刚刚", "just now").into(),
            (Lang::Zh, true) => format!("{span}后"),
            (Lang::Zh, false) => format!("{span}前"),
            (Lang::En, true) => format!("in {span}"),
            (Lang::En, false) => format!("{span} ago"),
        }
    }

    /// Time left until a deadline ("3 小时后到期"), or how long it is overdue ("已超期 2 天").
    pub fn due(&self, deadline: &DateTime<Utc>) -> (String, bool) {
        let d = *deadline - self.now;
        let overdue = d.num_seconds() < 0;
        let span = span(self.lang, d.num_minutes().unsigned_abs().max(1));
        let text = match (self.lang, overdue) {
            (Lang::Zh, false) => format!("{span}后到期"),
            (Lang::Zh, true) => format!("已超期 {span}"),
            (Lang::En, false) => format!("due in {span}"),
            (Lang::En, true) => format!("overdue by {span}"),
        };
        (text, overdue)
    }
}

/// A span of minutes in its largest whole unit.
fn span(lang: Lang, minutes: u64) -> String {
    let (n, zh, en) = if minutes < 60 {
        (minutes, "分钟", "minute")
    } else if minutes < 48 * 60 {
        (minutes / 60, "小时", "hour")
    } else if minutes < 60 * 24 * 60 {
        (minutes / (24 * 60), "天", "day")
    } else if minutes < 365 * 24 * 60 {
        (minutes / (30 * 24 * 60), "个月", "month")
    } else {
        (minutes / (365 * 24 * 60), "年", "year")
    };
    match lang {
        Lang::Zh => format!("{n} {zh}"),
        Lang::En if n == 1 => format!("1 {en}"),
        Lang::En => format!("{n} {en}s"),
    }
}

/// A use case's refusal of a warning move, in the page's language.
pub fn move_error(lang: Lang, e: &MoveError) -> String {
    if lang == Lang::En {
        return e.to_string();
    }
    match e {
        MoveError::UnknownActor { actor } => {
            format!("{actor} 不在干部名录中，不能处理预警：请管理员把您加入名录。")
        }
        MoveError::NotResponsible { assignee, .. } => format!(
            "这条预警由 {assignee} 负责：只有责任干部、其代班人或本辖区的督办人员可以处理。"
        ),
        MoveError::Unassigned { .. } => {
            "这条预警所在辖区没有责任干部：只有本辖区的督办人员可以处理。".into()
        }
        MoveError::BadTransition { action, status, .. } => {
            let st = WarningStatus::from_code(status);
            let name = st.map_or("", |s| lang.status(s));
            let hint = match (st, *action) {
                (Some(WarningStatus::Resolved), _) => {
                    "预警已办结；该户出现新情况时会开启新的预警。"
                }
                (_, "acknowledge") => "预警已经签收过了。",
                (_, "visit") => "入户核查已经记录过了。",
                (Some(WarningStatus::Open), "resolve") => "请先签收预警。",
                (_, "resolve") => "给予救助或纳入保障须先入户核查：请先记录入户核查。",
                _ => "",
            };
            format!("预警当前为「{name}」，不能{}。{hint}", lang.action(action))
        }
        MoveError::NeedsSupervisor { amount, limit } => format!(
            "救助金额 {} 元超过乡镇审批限额 {} 元（先行救助）：须由县级督办人员审批记录。",
            yuan(amount.fen()),
            yuan(limit.fen())
        ),
        MoveError::ZeroRelief => "救助金额必须大于零。".into(),
        MoveError::NoReason => "请填写说明：它会记入预警的处理记录。".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn clock(lang: Lang) -> Clock {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 28, 44).unwrap();
        Clock::new(chrono_tz::Asia::Shanghai, now, lang)
    }

    #[test]
    fn times_are_in_the_localitys_zone_to_the_minute() {
        let c = clock(Lang::Zh);
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 17, 28, 44).unwrap()
            + chrono::TimeDelta::microseconds(355_517);
        assert_eq!(c.at(&t), "2026-12-08 01:28");
        assert_eq!(c.day(&t), "2026-12-08");
    }

    #[test]
    fn relative_times_say_how_long_in_the_largest_unit() {
        let c = clock(Lang::Zh);
        let later = c.now + chrono::TimeDelta::minutes(3 * 60 + 20);
        assert_eq!(c.due(&later), ("3 小时后到期".to_string(), false));
        let before = c.now - chrono::TimeDelta::days(245);
        assert_eq!(c.relative(&before), "8 个月前");
        let late = c.now - chrono::TimeDelta::hours(50);
        assert_eq!(c.due(&late), ("已超期 2 天".to_string(), true));
        let e = clock(Lang::En);
        assert_eq!(
            e.relative(&(e.now - chrono::TimeDelta::minutes(61))),
            "1 hour ago"
        );
    }

    fn accept(value: &str) -> Lang {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            axum::http::HeaderValue::from_str(value).unwrap(),
        );
        Lang::from_accept_language(&h)
    }

    #[test]
    fn the_api_language_follows_accept_language_and_is_chinese_by_default() {
        assert_eq!(Lang::from_accept_language(&HeaderMap::new()), Lang::Zh);
        assert_eq!(accept("en"), Lang::En);
        assert_eq!(accept("en-US,en;q=0.9"), Lang::En);
        assert_eq!(accept("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(accept("ZH-hans"), Lang::Zh);
        // The weights decide, not the order.
        assert_eq!(accept("zh;q=0.5, en;q=0.9"), Lang::En);
        assert_eq!(accept("en;q=0.4, zh-TW;q=0.6"), Lang::Zh);
        assert_eq!(accept("fr, en;q=0.1"), Lang::En);
        // q=0 is "not this".
        assert_eq!(accept("en;q=0, zh;q=0.1"), Lang::Zh);
        assert_eq!(accept("en;q=0"), Lang::Zh);
        // `*`, other languages and garbled headers: Chinese.
        assert_eq!(accept("*"), Lang::Zh);
        assert_eq!(accept("*, en;q=0.5"), Lang::Zh);
        assert_eq!(accept("fr-FR, de"), Lang::Zh);
        assert_eq!(accept(";;;,,q=x"), Lang::Zh);
        assert_eq!(accept("en;q=2"), Lang::Zh);
        assert_eq!(accept("english"), Lang::Zh);
    }

    #[test]
    fn the_escalation_ticks_history_notes_are_in_chinese() {
        assert_eq!(
            Lang::Zh.history_note("escalated", "to zhao: not acknowledged within 4 h"),
            "通知 zhao：超过 4 小时无人签收"
        );
        assert_eq!(
            Lang::Zh.history_note("reminder", "to li: still waiting"),
            "通知 li：仍在等待处理"
        );
        assert_eq!(
            Lang::En.history_note("reminder", "to li: still waiting"),
            "to li: still waiting"
        );
        assert_eq!(Lang::Zh.history_note("visit", "to the well"), "to the well");
    }

    #[test]
    fn refusals_are_explained_in_chinese() {
        let e = MoveError::NeedsSupervisor {
            amount: doudi_model::Money::from_fen(600_000),
            limit: doudi_model::Money::from_fen(300_000),
        };
        let zh = move_error(Lang::Zh, &e);
        assert!(zh.contains("6000.00 元") && zh.contains("县级"), "{zh}");
        let e = MoveError::BadTransition {
            action: "resolve",
            status: "open",
            hint: "",
        };
        assert_eq!(
            move_error(Lang::Zh, &e),
            "预警当前为「待签收」，不能办结。请先签收预警。"
        );
    }
}
