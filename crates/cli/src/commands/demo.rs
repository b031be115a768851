use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use doudi_app::mask::mask_address;
use doudi_model::{mask_name, Household, Level};
use doudi_synth::{GenConfig, Noise};

use super::{gen, import, officers, open_store, regions, run};
use crate::Config;

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
            std::fs::remove_dir_all(&p).with_context(|| format!("cannot clear {}", p.display()))?;
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
            std::fs::remove_file(&f).with_context(|| format!("cannot remove {}", f.display()))?;
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

    println!("兜底 doudi — demo\n");
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
    println!(
        "1. generated {} households ({} members) and {} department events in {}/",
        summary.households,
        summary.members,
        events,
        args.dir.display()
    );

    let store = open_store(&config).await?;
    let register_file = args.dir.join("register.jsonl");
    let households = match import::read_register(&register_file)? {
        Ok(h) => h,
        Err(problems) => anyhow::bail!("generated register is invalid: {}", problems.join("; ")),
    };
    let report = import::import_households(&store, &households, &register_file, true).await?;
    let officers_file = args.dir.join("officers.jsonl");
    let officers = match officers::read_officers(&officers_file)? {
        Ok(o) => o,
        Err(problems) => anyhow::bail!("generated officers are invalid: {}", problems.join("; ")),
    };
    let directory = officers::import(&store, officers).await?;
    let regions_file = args.dir.join("regions.csv");
    let regions = match regions::read_regions(&regions_file)? {
        Ok(r) => r,
        Err(problems) => anyhow::bail!(
            "generated region names are invalid: {}",
            problems.join("; ")
        ),
    };
    store
        .import_region_names(&regions, &regions_file.display().to_string())
        .await?;
    println!(
        "2. imported the register: {} households added; {} officers to route warnings to; {} region names",
        report.added,
        directory.added,
        regions.len()
    );

    let run_report = run::run_pipeline(&config, &store, args.dir.join("feeds"), true).await?;
    println!(
        "3. ran the pipeline: {} records in {:.1} s — {} linked to a household member, {} unmatched, {} dead letters",
        run_report.received,
        run_report.elapsed_ms as f64 / 1000.0,
        run_report.linked,
        run_report.unmatched,
        run_report.dead_letters
    );

    let status = store.status().await?;
    let open: i64 = status.warnings_open.values().sum();
    let level = |l: Level| status.warnings_open.get(&l).copied().unwrap_or(0);
    println!(
        "\n预警 Open warnings: {open} — 红色 red {}, 橙色 orange {}, 黄色 yellow {}. The most urgent:\n",
        level(Level::Red),
        level(Level::Orange),
        level(Level::Yellow)
    );
    let shown = store.open_warnings(args.show, None).await?;
    let codes: Vec<String> = shown.iter().map(|w| w.region_code.clone()).collect();
    let names = store.region_names(&codes).await?;
    for w in &shown {
        print_warning(w, names.get(&w.region_code).map(String::as_str));
    }
    let db = &config.store.url;
    println!(
        "Done in {:.1} s. Look further (add --db {db}):\n  doudi status\n  doudi warnings list            all warnings, with the officer responsible\n  doudi warnings show ID         one warning: reasons, relief, history\n  doudi trace HOUSEHOLD          why a household was flagged, record by record\n  doudi review list              records the linker left for a person to decide\n  doudi crosscheck --snapshots {}/snapshots --out {}/report",
        started.elapsed().as_secs_f64(),
        args.dir.display(),
        args.dir.display()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A household as the command line shows it (masked, as `doudi_app::mask` says for every door):
/// its category, village and address detail masked, then its members with name and ID number masked.
fn household_lines(h: &Household, place: Option<&str>) -> (String, String) {
    let line = format!(
        "  {} · {} ({}) · {}",
        h.category.name_zh(),
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
    (line, format!("  成员 members: {}", members.join(", ")))
}

/// One warning as an officer reads it; `place` is its village's name (东河口镇大塘村), if known.
fn print_warning(w: &doudi_store::WarningView, place: Option<&str>) {
    let assessment = &w.summary;
    let household: Option<Household> = serde_json::from_value(w.household.clone()).ok();
    let level_zh = match w.level {
        Level::None => "",
        other => other.name_zh(),
    };
    println!(
        "[{level_zh} {}] 预警 #{} · 户 {} · score {} · 责任人 officer {}",
        w.level.code().to_uppercase(),
        w.warning_id,
        w.household_id,
        w.score,
        w.assigned_to.as_deref().unwrap_or("(unassigned)")
    );
    if let Some(h) = &household {
        let (line, members) = household_lines(h, place);
        println!("{line}");
        println!("{members}");
    }
    {
        let a = assessment;
        println!("  原因 why:");
        for c in &a.contributions {
            println!("   {:+4}  {}", c.points, c.reason_zh);
            println!("         {}", c.reason_en);
        }
        for r in &a.review_needed {
            println!("   复核 review: {r}");
        }
        if let Some(r) = &a.relief {
            println!(
                "  建议临时救助 suggested relief: {} 元 ({} months, {}; approved by the {})",
                r.amount, r.months, r.kind, r.approver
            );
        }
    }
    println!("  截止 act by: {}\n", deadline_text(&w.deadline));
}

fn relation_zh(r: doudi_model::Relation) -> &'static str {
    use doudi_model::Relation::*;
    match r {
        Head => "户主",
        Spouse => "配偶",
        Child => "子女",
        Parent => "父母",
        Grandchild => "孙辈",
        Grandparent => "祖辈",
        Sibling => "兄弟姐妹",
        Other => "其他",
    }
}

/// `2026-11-24 22:23 (+08:00), in 23 h`.
fn deadline_text(t: &chrono::DateTime<chrono::Utc>) -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
    let local = t.with_timezone(&china);
    let hours = (*t - chrono::Utc::now()).num_hours();
    let left = if hours >= 0 {
        format!("in {hours} h")
    } else {
        format!("{} h overdue", -hours)
    };
    format!("{} (+08:00), {left}", local.format("%Y-%m-%d %H:%M"))
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
