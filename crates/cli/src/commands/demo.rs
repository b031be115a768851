use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use doudi_app::mask::mask_address;
use doudi_model::{mask_name, Household, Level};
use doudi_synth::{GenConfig, Noise};

use super::{gen, import, officers, open_store, regions, run};
use crate::lang::{lang, t, Lang};
use crate::{output, Config};

#[derive(Debug, Args)]
#[command(after_help = "\
The demo writes into DIR (default ./doudi-demo): the generated register and feeds, the ground truth, and the database doudi.db (unless --db is given). Running it again starts afresh in the same folder.")]
pub struct DemoArgs {
    /// Folder for the generated data and the demo database.
    #[arg(long, default_value = "doudi-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Number of households to generate.
    #[arg(long, default_value_t = 2000)]
    pub households: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// How many warnings to print.
    #[arg(long, default_value_t = 5)]
    pub show: i64,
}

/// Remove what an earlier demo left in `dir` (only the files the demo writes).
fn clear_demo_dir(dir: &Path, db_file: Option<&Path>) -> anyhow::Result<()> {
    for sub in ["feeds", "truth", "snapshots", "report"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| output::cannot("清空", "clear", &p))?;
        }
    }
    let mut files = vec![
        dir.join("register.jsonl"),
        dir.join("officers.jsonl"),
        dir.join("regions.csv"),
    ];
    if let Some(db) = db_file {
        for suffix in ["", "-wal", "-shm"] {
            files.push(PathBuf::from(format!("{}{suffix}", db.display())));
        }
    }
    for f in files {
        if f.exists() {
            std::fs::remove_file(&f).with_context(|| output::cannot("删除", "remove", &f))?;
        }
    }
    Ok(())
}

pub async fn run(config: &Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut config = config.clone();
    // The demo keeps its database beside its data unless one was named.
    let default_db = Config::default().store.url;
    let own_db = config.store.url == default_db;
    if own_db {
        config.store.url = format!("sqlite://{}", args.dir.join("doudi.db").display());
    }
    let db_file = own_db.then(|| args.dir.join("doudi.db"));
    clear_demo_dir(&args.dir, db_file.as_deref())?;

    say!("兜底 doudi — 演示\n", "兜底 doudi — demo\n");
    let cfg = GenConfig {
        households: args.households,
        seed: args.seed,
        start: gen::default_start(),
        months: 12,
        hardship_share: 0.05,
        noise: Noise::default(),
    };
    let summary = gen::generate(&args.dir, &cfg)?;
    let events: usize = summary.events.values().sum();
    let (households, members, dir) = (summary.households, summary.members, args.dir.display());
    say!(
        "1. 已生成 {households} 户（{members} 人）和 {events} 条部门记录，在 {dir}/",
        "1. generated {households} households ({members} members) and {events} department events in {dir}/"
    );

    let store = open_store(&config).await?;
    let register_file = args.dir.join("register.jsonl");
    let households = generated(
        import::read_register(&register_file)?,
        t("生成的低保名册", "generated register is"),
    )?;
    let report = import::import_households(&store, &households, &register_file, true).await?;
    let officers_file = args.dir.join("officers.jsonl");
    let officers = generated(
        officers::read_officers(&officers_file)?,
        t("生成的干部名录", "generated officers are"),
    )?;
    let directory = doudi_app::engine::import_directory(&store, &officers).await?;
    let regions_file = args.dir.join("regions.csv");
    let regions = generated(
        regions::read_regions(&regions_file)?,
        t("生成的区划名称", "generated region names are"),
    )?;
    store
        .import_region_names(&regions, &regions_file.display().to_string())
        .await?;
    let (added, officers, names) = (report.added, directory.added, regions.len());
    say!(
        "2. 已导入低保名册：新增 {added} 户；负责接收预警的干部 {officers} 名；区划名称 {names} 个",
        "2. imported the register: {added} households added; {officers} officers to route warnings to; {names} region names"
    );

    let run_report = run::run_pipeline(&config, &store, args.dir.join("feeds"), true).await?;
    let r = &run_report;
    let (received, secs) = (r.received, r.elapsed_ms as f64 / 1000.0);
    let (linked, unmatched, dead) = (r.linked, r.unmatched, r.dead_letters);
    say!(
        "3. 已运行数据比对：{received} 条记录，用时 {secs:.1} 秒 — 确认到住户成员 {linked} 条，未匹配 {unmatched} 条，死信 {dead} 条",
        "3. ran the pipeline: {received} records in {secs:.1} s — {linked} linked to a household member, {unmatched} unmatched, {dead} dead letters"
    );

    let status = store.status().await?;
    let open: i64 = status.warnings_open.values().sum();
    let level = |l: Level| status.warnings_open.get(&l).copied().unwrap_or(0);
    let (red, orange, yellow) = (
        level(Level::Red),
        level(Level::Orange),
        level(Level::Yellow),
    );
    say!(
        "\n未办结预警 {open} 条 — 红色 {red}，橙色 {orange}，黄色 {yellow}。最紧急的：\n",
        "\nOpen warnings: {open} — red {red}, orange {orange}, yellow {yellow}. The most urgent:\n"
    );
    let shown = store.open_warnings(args.show, None).await?;
    let codes: Vec<String> = shown.iter().map(|w| w.region_code.clone()).collect();
    let names = store.region_names(&codes).await?;
    for w in &shown {
        print_warning(w, names.get(&w.region_code).map(String::as_str));
    }
    let db = &config.store.url;
    let (secs, dir) = (started.elapsed().as_secs_f64(), args.dir.display());
    say!(
        "完成，用时 {secs:.1} 秒。进一步查看（加上 --db {db}）：\n  doudi status\n  doudi warnings list            全部预警及责任干部\n  doudi warnings show ID         一条预警：原因、救助建议、处理记录\n  doudi trace HOUSEHOLD          逐条记录说明该户为何被预警\n  doudi review list              需要人工确认身份的记录\n  doudi crosscheck --snapshots {dir}/snapshots --out {dir}/report",
        "Done in {secs:.1} s. Look further (add --db {db}):\n  doudi status\n  doudi warnings list            all warnings, with the officer responsible\n  doudi warnings show ID         one warning: reasons, relief, history\n  doudi trace HOUSEHOLD          why a household was flagged, record by record\n  doudi review list              records the linker left for a person to decide\n  doudi crosscheck --snapshots {dir}/snapshots --out {dir}/report"
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A household as the command line shows it (masked, as `doudi_app::mask` says for every door):
/// its category, village and address detail masked, then its members with name and ID number masked.
fn household_lines(h: &Household, place: Option<&str>) -> (String, String) {
    let line = format!(
        "  {} · {} ({}) · {}",
        lang().category(h.category.code()),
        place.unwrap_or(h.region_code.as_str()),
        h.region_code,
        mask_address(&h.address)
    );
    let members: Vec<String> = h
        .members
        .iter()
        .map(|m| {
            format!(
                "{} ({}, {})",
                mask_name(&m.name),
                relation_zh(m.relation),
                m.id_number.masked()
            )
        })
        .collect();
    let members = members.join(t("，", ", "));
    (line, tr!("  成员：{members}", "  members: {members}"))
}

/// One warning as an officer reads it; `place` is its village's name (东河口镇大塘村), if known.
fn print_warning(w: &doudi_store::WarningView, place: Option<&str>) {
    let assessment = &w.summary;
    let household: Option<Household> = serde_json::from_value(w.household.clone()).ok();
    let (id, hh, score) = (w.warning_id, &w.household_id, w.score);
    let officer = crate::lang::assignee(w.assigned_to.as_deref());
    match lang() {
        Lang::Zh => println!(
            "[{}] 预警 #{id} · 户 {hh} · 分数 {score} · 责任人 {officer}",
            crate::lang::level(w.level)
        ),
        Lang::En => println!(
            "[{}] warning #{id} · household {hh} · score {score} · officer {officer}",
            w.level.code().to_uppercase()
        ),
    }
    if let Some(h) = &household {
        let (line, members) = household_lines(h, place);
        println!("{line}");
        println!("{members}");
    }
    {
        let a = assessment;
        say!("  原因：", "  why:");
        for c in &a.contributions {
            let reason = lang().t(&c.reason_zh, &c.reason_en);
            println!("   {:+4}  {reason}", c.points);
        }
        for r in &a.review_needed {
            say!("   需复核：{r}", "   review: {r}");
        }
        if let Some(r) = &a.relief {
            let (amount, months) = (r.amount, r.months);
            match lang() {
                Lang::Zh => println!(
                    "  建议临时救助：{amount} 元（{months} 个月，{}；{}审批）",
                    t_relief_kind(&r.kind),
                    t_approver(&r.approver)
                ),
                Lang::En => println!(
                    "  suggested relief: {amount} yuan ({months} months, {}; approved by the {})",
                    r.kind, r.approver
                ),
            }
        }
    }
    say!("  截止：{}\n", "  act by: {}\n", deadline_text(&w.deadline));
}

/// A member's relation to the head, in the language in force (the pages' words).
fn relation_zh(r: doudi_model::Relation) -> String {
    let code = serde_json::to_value(r).unwrap_or_default();
    lang().relation(code.as_str().unwrap_or("other"))
}

/// 急难型 / 支出型 relief.
fn t_relief_kind(kind: &str) -> &str {
    match kind {
        "emergency" => "急难型",
        "expense" => "支出型",
        other => other,
    }
}

/// Who approves: 乡镇 or 县级.
fn t_approver(approver: &str) -> &str {
    match approver {
        "township" => "乡镇",
        "county" => "县级",
        other => other,
    }
}

/// What a generated file held, or (a bug of the generator) what is wrong with it.
fn generated<T>(read: Result<T, Vec<String>>, what: &str) -> anyhow::Result<T> {
    read.map_err(|problems| {
        let problems = problems.join("; ");
        anyhow::anyhow!(tr!("{what}无效：{problems}", "{what} invalid: {problems}"))
    })
}

/// `2026-11-24 22:23 (+08:00), in 23 h`.
fn deadline_text(t: &chrono::DateTime<chrono::Utc>) -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
    let local = t.with_timezone(&china);
    let hours = (*t - chrono::Utc::now()).num_hours();
    let left = if hours >= 0 {
        tr!("{hours} 小时后到期", "in {hours} h")
    } else {
        let over = -hours;
        tr!("已超期 {over} 小时", "{over} h overdue")
    };
    let at = local.format("%Y-%m-%d %H:%M");
    tr!("{at}（+08:00），{left}", "{at} (+08:00), {left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_shows_members_id_numbers_names_and_address_masked() {
        let h: Household = serde_json::from_str(
            r#"{"household_id":"H1","region_code":"341502001001","address":"金安区三十铺镇一村12号",
            "category":"dibao","area":"rural","monthly_benefit_fen":73200,"enrolled_on":"2023-05-01",
            "members":[{"member_id":"M1","id_number":"11010519491231002X","name":"王秀英","sex":"female",
            "birth_date":"1949-12-31","relation":"head","work_capacity":"none","monthly_income_fen":0}]}"#,
        )
        .expect("a valid household");
        let (line, members) = household_lines(&h, Some("三十铺镇一村"));
        assert!(!line.contains("12号"), "{line}");
        assert!(line.contains("金安区***"), "{line}");
        assert!(!members.contains("11010519491231002X"), "{members}");
        assert!(members.contains("110105********002X"), "{members}");
        assert!(
            members.contains("王**") && !members.contains("王秀英"),
            "{members}"
        );
    }
}
