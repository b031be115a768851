//! The API's error messages in Chinese. Every message the service, its use cases and its store can
//! answer with is written once in English (where it is made, next to its cause) and once here in
//! Chinese: a pattern of the English text, its `{}` standing for what the message names (a place
//! in the body, a row, a field, a token, a warning), and the Chinese text that names the same.
//! What a hole holds is kept, so the place stays; a hole that is itself a known message (or a
//! list of them joined by `; `) is translated too. A message no pattern knows gets what its status
//! means in Chinese, with the English detail kept after it.

use doudi_model::WarningStatus;

use crate::locale::Lang;

/// English pattern (`{}`: what the message names) → Chinese (`{0}`, `{1}`, …: the holes in
/// order; `{1:status}`, `{0:action}`, `{1:outcome}`: a code in words). More specific first.
const PATTERNS: &[(&str, &str)] = &[
    // The routes and the request's parameters.
    (
        "no such route (the API is described in schemas/openapi.json)",
        "没有这个接口（API 见 schemas/openapi.json）",
    ),
    (
        "level must be red, orange or yellow (got {})",
        "level 须为 red、orange 或 yellow（收到 {0}）",
    ),
    (
        "state must be open, acknowledged, visited, resolved, active or all (got {})",
        "state 须为 open、acknowledged、visited、resolved、active 或 all（收到 {0}）",
    ),
    (
        "region must be a region-code prefix of 1 to 12 digits (got {})",
        "region 须为 1 至 12 位数字的区划代码前缀（收到 {0}）",
    ),
    (
        "region must be a region code of up to 12 digits (got {})",
        "region 须为不超过 12 位数字的区划代码（收到 {0}）",
    ),
    (
        "no region {} within this token's region {}",
        "本令牌的辖区 {1} 内没有区划 {0}",
    ),
    ("limit must be 1 to {} (got {})", "limit 须在 1 至 {0} 之间（收到 {1}）"),
    ("offset must not be negative (got {})", "offset 不能为负数（收到 {0}）"),
    ("days must be 1 to 366 (got {})", "days 须在 1 至 366 之间（收到 {0}）"),
    ("{} must not contain U+0000", "{0} 不能含有 U+0000 字符"),
    ("warning id must be a number (got {})", "预警编号须为数字（收到 {0}）"),
    ("review seq must be a number (got {})", "复核记录序号须为数字（收到 {0}）"),
    (
        "give either \"link\": MEMBER or \"reject\": true",
        "请给出 \"link\": 成员编号 或 \"reject\": true，二者选一",
    ),
    (
        "give either \"household\" or \"region\"",
        "请给出 \"household\" 或 \"region\"，二者选一",
    ),
    (
        "give either \"until\" (RFC 3339) or \"hours\"",
        "请给出 \"until\"（RFC 3339 时间）或 \"hours\"，二者选一",
    ),
    ("{} {} is not an RFC 3339 time: {}", "{0} 的值 {1} 不是 RFC 3339 时间：{2}"),
    // Authentication and roles.
    (
        "too many failed sign-ins from this address: wait a minute and try again",
        "该地址登录失败次数过多：请一分钟后再试",
    ),
    (
        "no token: send `Authorization: Bearer TOKEN` (create one with `doudi tokens create`)",
        "没有令牌：请发送 `Authorization: Bearer TOKEN`（用 `doudi tokens create` 创建令牌）",
    ),
    ("unknown token", "令牌无效：请检查令牌，或向管理员申请新的令牌"),
    ("unknown session: sign in again", "会话无效：请重新登录"),
    ("token #{} was revoked at {}", "令牌 #{0} 已于 {1} 撤销：请向管理员申请新的令牌"),
    ("token #{} expired at {}", "令牌 #{0} 已于 {1} 过期：请向管理员申请新的令牌"),
    ("token #{} has an unknown role", "令牌 #{0} 的角色无法识别：请向管理员申请新的令牌"),
    ("session #{} was signed out at {}", "会话 #{0} 已于 {1} 退出登录"),
    ("session #{} expired at {}: sign in again", "会话 #{0} 已于 {1} 过期：请重新登录"),
    (
        "the token could not be checked (database error)",
        "无法核验令牌（数据库出错）：请稍后再试",
    ),
    (
        "a {} token may not use this; it is for: {}",
        "{0} 令牌无权使用此接口；它只供以下角色使用：{1}",
    ),
    (
        "token #{} acts for no officer: create one with `doudi tokens create --officer ID`",
        "令牌 #{0} 未关联干部：请用 `doudi tokens create --officer ID` 创建关联干部的令牌",
    ),
    ("token #{} acts for no officer", "令牌 #{0} 未关联干部，不能处理预警或复核"),
    // The body and the document.
    (
        "the body does not match the schema in schemas/openapi.json: {} (and {} more)",
        "请求体不符合 schemas/openapi.json 中的约定：{0}（另有 {1} 处）",
    ),
    (
        "the body does not match the schema in schemas/openapi.json: {}",
        "请求体不符合 schemas/openapi.json 中的约定：{0}",
    ),
    ("at {}: {}", "位置 {0}：{1}"),
    ("this request needs a JSON body", "此请求需要 JSON 请求体"),
    (
        "send the body as JSON with `Content-Type: application/json`",
        "请以 JSON 发送请求体（`Content-Type: application/json`）",
    ),
    ("the body is not JSON: {}", "请求体不是 JSON：{0}"),
    ("the body does not fit this request: {}", "请求体与此请求不符：{0}"),
    (
        "the request body is larger than the service accepts ({} bytes: {})",
        "请求体超过服务接受的大小（{0} 字节：{1}）",
    ),
    (
        "{} {} reads a body that schemas/openapi.json does not describe",
        "{0} {1} 读取的请求体在 schemas/openapi.json 中没有描述",
    ),
    ("Failed to deserialize query string: {}", "查询参数无法解析：{0}"),
    ("Failed to parse the request body as JSON: {}", "请求体不是 JSON：{0}"),
    ("Method Not Allowed", "此接口不支持该请求方法"),
    ("Not Found", "没有这个接口"),
    // Pushing feeds.
    (
        "no feed {} (known: health_insurance, employment, housing, civil_registry)",
        "没有数据源 {0}（已知：health_insurance、employment、housing、civil_registry）",
    ),
    ("token #{} may not push to {}: it pushes {}", "令牌 #{0} 不能推送到 {1}：它推送的是 {2}"),
    (
        "token #{} sent more than {} batches in the last minute (serve.push_batches_per_minute): wait and send again",
        "令牌 #{0} 在过去一分钟内推送超过 {1} 批（serve.push_batches_per_minute）：请稍候再发",
    ),
    (
        "no push profile {}: serve.push_profiles lists {}",
        "没有推送模板 {0}：serve.push_profiles 列出的是 {1}",
    ),
    (
        "profile {} makes {} events, not {}: push it to /api/feeds/{}",
        "模板 {0} 生成的是 {1} 事件，不是 {2}：请推送到 /api/feeds/{3}",
    ),
    (
        "send the batch as `Content-Type: {}`: one JSON envelope per line (or a department's export with ?profile=NAME)",
        "请以 `Content-Type: {0}` 发送：每行一个 JSON 信封（或用 ?profile=NAME 发送部门自己的导出文件）",
    ),
    (
        "profile {} reads {}: send the export as `Content-Type: {}`",
        "模板 {0} 读取 {1}：请以 `Content-Type: {2}` 发送导出文件",
    ),
    (
        "the batch holds no event: send one JSON envelope per line",
        "这批数据没有事件：请每行发送一个 JSON 信封",
    ),
    (
        "the export holds no row that profile {} makes an event of",
        "导出文件中没有模板 {0} 能生成事件的行",
    ),
    (
        "the batch is refused whole, nothing was stored: {} line(s) refused: {}; and {} more",
        "整批拒收，未存储任何数据：{0} 行被拒：{1}；另有 {2} 行",
    ),
    (
        "the batch is refused whole, nothing was stored: {} line(s) refused: {}",
        "整批拒收，未存储任何数据：{0} 行被拒：{1}",
    ),
    (
        "the batch is refused whole, nothing was stored: {} row(s) refused: {}; and {} more",
        "整批拒收，未存储任何数据：{0} 行被拒：{1}；另有 {2} 行",
    ),
    (
        "the batch is refused whole, nothing was stored: {} row(s) refused: {}",
        "整批拒收，未存储任何数据：{0} 行被拒：{1}",
    ),
    (
        "line {}: source_mismatch: the event says source {} but was pushed to {}",
        "第 {0} 行：source_mismatch：事件的来源是 {1}，却推送到了 {2}",
    ),
    ("line {}: {}: {}", "第 {0} 行：{1}：{2}"),
    ("row {}, column {} ({}): {}", "第 {0} 行，{1} 列（{2}）：{3}"),
    ("row {}, column {}: {}", "第 {0} 行，{1} 列：{2}"),
    ("row {} ({}): {}", "第 {0} 行（{1}）：{2}"),
    ("row {}: {}", "第 {0} 行：{1}"),
    (
        "the batch could not be published, nothing may be taken as stored: {}; send it again (it is idempotent)",
        "这批数据未能发布，不能视为已存储：{0}；请重新发送（重复发送是安全的）",
    ),
    ("push: {}: {}", "推送出错：{0}：{1}"),
    // Households, warnings and their moves.
    ("household {} is not in the register", "名册中没有户 {0}（或不在您的辖区内）"),
    ("no warning #{}", "没有预警 #{0}（或不在您的辖区内）"),
    ("warning #{} has a bad region code: {}", "预警 #{0} 的区划代码有误：{1}"),
    (
        "{} is not in the officer directory (see `doudi officers list`)",
        "{0} 不在干部名录中（见 `doudi officers list`）：请管理员把您加入名录",
    ),
    (
        "{} may not act on this warning: it is assigned to {} in region {}; only the assigned officer, their substitute or a supervisor of the region may",
        "{0} 不能处理这条预警：它由区划 {2} 的 {1} 负责；只有责任干部、其代班人或本辖区的督办人员可以处理",
    ),
    (
        "this warning is assigned to nobody (no officer covers region {}); only a supervisor of the region may act on it",
        "这条预警没有责任干部（区划 {0} 无干部负责）；只有本辖区的督办人员可以处理",
    ),
    (
        "cannot {} a warning that is {} (it is closed; a new fact about the household opens a new warning)",
        "预警当前为「{1:status}」，不能{0:action}：预警已办结；该户出现新情况时会开启新的预警",
    ),
    (
        "cannot {} a warning that is {} (it was withdrawn: a late record showed the household was not at risk; a new fact reopens it)",
        "预警当前为「{1:status}」，不能{0:action}：迟到的记录表明该户并无风险，预警已撤回；出现新情况时会重新开启",
    ),
    (
        "cannot {} a warning that is {} (it was acknowledged already)",
        "预警当前为「{1:status}」，不能{0:action}：预警已经签收过了",
    ),
    (
        "cannot {} a warning that is {} (the visit is recorded already)",
        "预警当前为「{1:status}」，不能{0:action}：入户核查已经记录过了",
    ),
    (
        "cannot {} a warning that is {} (acknowledge it first)",
        "预警当前为「{1:status}」，不能{0:action}：请先签收预警",
    ),
    (
        "cannot {} a warning that is {} before a visit (relief and enrolment follow a home visit: record it with `visit`)",
        "预警当前为「{1:status}」，不能{0:action}：给予救助或纳入保障须先入户核查，请先记录入户核查（`visit`）",
    ),
    ("cannot {} a warning that is {}", "预警当前为「{1:status}」，不能{0:action}"),
    (
        "relief of {} yuan is above the township's approval limit of {} yuan (先行救助); a supervisor of the county must record it",
        "救助金额 {0} 元超过乡镇审批限额 {1} 元（先行救助）：须由县级督办人员审批记录",
    ),
    ("a relief amount must be more than zero", "救助金额必须大于零"),
    (
        "a move needs a reason (--note): it is kept in the warning's history",
        "请填写说明（--note）：它会记入预警的处理记录",
    ),
    ("disposition {} needs amount (yuan)", "处置方式 {0} 需要填写金额（元）"),
    ("disposition {} needs category", "处置方式 {0} 需要选择保障类别"),
    ("disposition {} needs department", "处置方式 {0} 需要填写接收部门"),
    ("amount {} is not an amount in yuan: {}", "金额 {0} 不是以元计的金额（例如 1500 或 1500.50）：{1}"),
    (
        "unknown category {} (dibao, tekun, dibao_edge, expenditure, unstable, edge_prone, sudden)",
        "保障类别 {0} 不正确（可选：dibao、tekun、dibao_edge、expenditure、unstable、edge_prone、sudden）",
    ),
    (
        "unknown disposition {} (relief_granted, enrolled, referred, risk_cleared, false_alarm)",
        "处置方式 {0} 不正确（可选：relief_granted、enrolled、referred、risk_cleared、false_alarm）",
    ),
    (
        "warning #{} cannot be moved back to {} by a person",
        "预警 #{0} 不能由人工改回「{1:status}」",
    ),
    (
        "warning #{} is no longer {}: someone moved it meanwhile (see `doudi warnings show {}`)",
        "预警 #{0} 已不再是「{1:status}」：刚被他人处理过，请刷新后再试（见 `doudi warnings show {2}`）",
    ),
    ("warning #{}: {}", "预警 #{0}：{1}"),
    // The review queue.
    ("record #{} is not in the review queue", "复核队列中没有记录 #{0}"),
    (
        "member {} is not among record #{}'s candidates (see GET /api/review)",
        "成员 {0} 不在记录 #{1} 的候选人中（见 GET /api/review）",
    ),
    (
        "event #{} has no identity decision (see `doudi review list`)",
        "事件 #{0} 没有身份判定（见 `doudi review list`）",
    ),
    (
        "event #{} was {} by the linker, not sent to review",
        "事件 #{0} 已由匹配程序判定为「{1:outcome}」，没有送人工复核",
    ),
    (
        "event #{} was decided already (see `doudi review show {}`)",
        "事件 #{0} 已经判定过了（见 `doudi review show {1}`）",
    ),
    // Silences.
    ("a silence needs a reason", "静默须填写原因"),
    (
        "{} may not silence {} {}: only a supervisor whose region contains {} may",
        "{0} 不能对{1} {2} 设置静默：只有辖区包含 {3} 的督办人员可以",
    ),
    (
        "hours must be 1 to {} (a silence lasts at most a year; got {})",
        "hours 须在 1 至 {0} 之间（静默最长一年；收到 {1}）",
    ),
    (
        "{} of the silence ({}) is outside the years 0001 to 9999",
        "静默的 {0}（{1}）超出 0001 至 9999 年",
    ),
    (
        "{} {} is outside the years 0001 to 9999 once in UTC",
        "{0} 的值 {1} 换算为 UTC 后超出 0001 至 9999 年",
    ),
    (
        "the silence ends ({}) before it starts ({})",
        "静默的结束时间（{0}）早于开始时间（{1}）",
    ),
    (
        "a silence lasts at most a year: it starts at {} and may end at {} at the latest (got {})",
        "静默最长一年：从 {0} 开始，最晚于 {1} 结束（收到 {2}）",
    ),
    (
        "a silence's {} {} is not a time as the store writes it (RFC 3339 in UTC with a four-digit year, e.g. 2026-03-01T00:00:00.000000Z)",
        "静默的 {0} {1} 不是可存储的时间（UTC 的 RFC 3339 时间，四位年份，例如 2026-03-01T00:00:00.000000Z）",
    ),
    ("region: {}", "区划代码有误：{0}"),
    // The system.
    ("the database is not answering: {}", "数据库没有响应：{0}；请稍后再试"),
    ("internal error: {}", "系统内部错误：{0}；请稍后再试，或联系管理员"),
    // Words standing alone in a hole.
    ("none", "无"),
    ("nothing", "无"),
];

/// `message` (as made, in English) in `lang`; `status` chooses the words when no pattern knows it.
pub fn message(lang: Lang, status: u16, message: &str) -> String {
    if lang == Lang::En {
        return message.to_string();
    }
    if let Some(zh) = translate(message) {
        return zh;
    }
    let (what, _) = status_words(status);
    format!("{what}：{message}")
}

/// What a status means and what to do, in Chinese (and whether the status is known).
fn status_words(status: u16) -> (&'static str, bool) {
    let words = match status {
        400 => "请求不符合 API 约定",
        401 => "未登录或令牌无效",
        403 => "您无权执行此操作",
        404 => "没有找到（或不在您的辖区内）",
        405 => "此接口不支持该请求方法",
        409 => "情况已有变化：请刷新后再试",
        413 => "提交的内容过长",
        415 => "请求体的类型不对",
        422 => "请求无法办理",
        429 => "请求过于频繁：请稍后再试",
        503 => "服务暂时不可用：请稍后再试",
        s if s >= 500 => "系统出错：请稍后再试，或联系管理员",
        _ => return ("请求出错", false),
    };
    (words, true)
}

/// The Chinese of a known message (its holes kept, or translated when they are messages too).
pub fn translate(text: &str) -> Option<String> {
    PATTERNS.iter().find_map(|(en, zh)| {
        let holes = holes(en, text)?;
        Some(fill(zh, &holes))
    })
}

/// What `text` holds in the holes of `pattern`, if it has the pattern's shape. A hole ends at the
/// first place where the rest of the pattern can follow (the last hole runs to the end).
fn holes<'t>(pattern: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let mut pieces = pattern.split("{}");
    let first = pieces.next().unwrap_or_default();
    let mut rest = text.strip_prefix(first)?;
    let pieces: Vec<&str> = pieces.collect();
    let mut out = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        if i + 1 == pieces.len() {
            let hole = rest.strip_suffix(piece)?;
            if hole.is_empty() {
                return None;
            }
            out.push(hole);
            rest = "";
        } else {
            let at = rest.find(piece)?;
            if at == 0 {
                return None;
            }
            out.push(&rest[..at]);
            rest = &rest[at + piece.len()..];
        }
    }
    rest.is_empty().then_some(out)
}

/// `zh` with its `{n}` / `{n:kind}` replaced by the holes.
fn fill(zh: &str, holes: &[&str]) -> String {
    let mut out = String::with_capacity(zh.len() + 32);
    let mut rest = zh;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let spec = &after[..close];
        let (index, kind) = spec.split_once(':').unwrap_or((spec, ""));
        match index.parse::<usize>().ok().and_then(|i| holes.get(i)) {
            Some(hole) => out.push_str(&hole_text(hole, kind)),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A hole as shown: a code in words, a known message translated, or kept as it is.
fn hole_text(hole: &str, kind: &str) -> String {
    let code = hole.trim_matches('"');
    match kind {
        "status" => {
            return WarningStatus::from_code(code)
                .map_or_else(|| hole.to_string(), |s| Lang::Zh.status(s).to_string())
        }
        "action" => return Lang::Zh.action(code).to_string(),
        "outcome" => return Lang::Zh.outcome(code).to_string(),
        _ => {}
    }
    // A list of refusals (`at /a: …; at /b: …`, `line 3: …; line 5: …`), each translated.
    let parts: Vec<&str> = hole.split("; ").collect();
    if parts.len() > 1 {
        let each: Option<Vec<String>> = parts.iter().map(|p| translate(p)).collect();
        if let Some(each) = each {
            return each.join("；");
        }
    }
    translate(hole).unwrap_or_else(|| hole.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `s` holds a Chinese character.
    fn has_han(s: &str) -> bool {
        s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    }

    #[test]
    fn every_pattern_has_its_holes_in_chinese() {
        for (en, zh) in PATTERNS {
            assert!(has_han(zh), "{en}: {zh}");
            let n = en.matches("{}").count();
            for i in 0..n {
                assert!(
                    zh.contains(&format!("{{{i}}}")) || zh.contains(&format!("{{{i}:")),
                    "{en}: hole {i} is dropped in {zh}"
                );
            }
        }
    }

    #[test]
    fn the_place_a_message_names_is_kept() {
        let en = "the body does not match the schema in schemas/openapi.json: at /hours: 0 is less than the minimum of 1; at /reason: \"\" is shorter than 1 character";
        let zh = message(Lang::Zh, 400, en);
        assert_eq!(
            zh,
            "请求体不符合 schemas/openapi.json 中的约定：位置 /hours：0 is less than the minimum of 1；位置 /reason：\"\" is shorter than 1 character"
        );
        let en = "the batch is refused whole, nothing was stored: 2 row(s) refused: row 3, column 姓名 (name): empty; row 9: too short; and 4 more";
        let zh = message(Lang::Zh, 422, en);
        assert_eq!(
            zh,
            "整批拒收，未存储任何数据：2 行被拒：第 3 行，姓名 列（name）：empty；第 9 行：too short；另有 4 行"
        );
        assert_eq!(message(Lang::En, 422, en), en);
    }

    #[test]
    fn codes_in_a_refusal_are_said_in_words() {
        assert_eq!(
            message(
                Lang::Zh,
                409,
                "warning #7: cannot resolve a warning that is open (acknowledge it first)"
            ),
            "预警 #7：预警当前为「待签收」，不能办结：请先签收预警"
        );
        assert_eq!(
            message(
                Lang::Zh,
                409,
                "warning #7 is no longer acknowledged: someone moved it meanwhile (see `doudi warnings show 7`)"
            ),
            "预警 #7 已不再是「已签收」：刚被他人处理过，请刷新后再试（见 `doudi warnings show 7`）"
        );
    }

    #[test]
    fn an_unknown_message_gets_its_status_in_chinese_and_keeps_the_detail() {
        let zh = message(Lang::Zh, 404, "something new");
        assert_eq!(zh, "没有找到（或不在您的辖区内）：something new");
    }
}
