use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use clap::Args;
use doudi_synth::{GenConfig, Noise};

use crate::lang::t;
use crate::output;

#[derive(Debug, Args)]
#[command(after_help = "\
Writes DIR/register.jsonl (the register, one household per line), DIR/officers.jsonl (an officer per township, a supervisor per county), DIR/regions.csv (the names of the counties, townships and villages, for `doudi regions import`), DIR/snapshots/ (nightly department extracts for `doudi crosscheck`), DIR/feeds/<source>/<YYYY-MM>.jsonl (department events), with --native DIR/native/<profile>/ (the same events as the departments export them) and DIR/truth/ (which member each event is about, which households were given a hardship scenario). The same --seed always writes the same bytes.

Example: doudi gen --households 100000 --seed 1 --out data && doudi import data/register.jsonl && doudi regions import data/regions.csv")]
pub struct GenArgs {
    /// Number of households in the register.
    #[arg(long, default_value_t = 1000)]
    pub households: usize,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace data an earlier `gen` wrote in the output folder (its register.jsonl, officers.jsonl, regions.csv, feeds/, snapshots/, truth/).
    #[arg(long)]
    pub force: bool,
    /// First day of the feed window (default: the first of the month a year before today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start: Option<NaiveDate>,
    /// Length of the feed window in months.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Share of households given a hardship scenario (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    pub hardship_share: f64,
    /// Clean feeds: every record carries the member's exact ID number and name.
    #[arg(long)]
    pub no_noise: bool,
    /// Share of records with one wrong ID digit.
    #[arg(long)]
    pub wrong_digit: Option<f64>,
    /// Share of records with two adjacent ID digits swapped.
    #[arg(long)]
    pub swapped_digits: Option<f64>,
    /// Share of records with a legacy 15-digit ID.
    #[arg(long)]
    pub legacy_15: Option<f64>,
    /// Share of records with no ID number.
    #[arg(long)]
    pub missing_id: Option<f64>,
    /// Share of records with a homophone in the name (张玮 for 张伟).
    #[arg(long)]
    pub homophone_name: Option<f64>,
    /// Share of records with a traditional character in the name.
    #[arg(long)]
    pub traditional_name: Option<f64>,
    /// Share of records about people not in the register.
    #[arg(long)]
    pub outsiders: Option<f64>,
    /// Also write DIR/eval/: the feed records and the register members as CSV, the true pairs and
    /// a spec, for `doudi linkage eval` (the command is the first line of DIR/eval/spec.toml).
    #[arg(long)]
    pub eval_csv: bool,
    /// With --eval-csv: leave the ID numbers out and write names and birth dates in parts
    /// (family and given name; birth year, month and day), with a spec that combines them.
    #[arg(long, requires = "eval_csv")]
    pub eval_without_id: bool,
    /// Also write DIR/native/<profile>/: the same feeds as the departments export them (GB18030
    /// and GBK CSV, UTF-8 CSV with a BOM, Excel workbooks, JSON lines, fixed-width text), one
    /// folder per shipped profile with its profile.toml, for `doudi feeds check`.
    #[arg(long)]
    pub native: bool,
}

impl GenArgs {
    pub fn to_config(&self) -> GenConfig {
        let mut noise = if self.no_noise {
            Noise::none()
        } else {
            Noise::default()
        };
        let set = |slot: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut noise.wrong_digit, self.wrong_digit);
        set(&mut noise.swapped_digits, self.swapped_digits);
        set(&mut noise.legacy_15, self.legacy_15);
        set(&mut noise.missing_id, self.missing_id);
        set(&mut noise.homophone_name, self.homophone_name);
        set(&mut noise.traditional_name, self.traditional_name);
        set(&mut noise.outsiders, self.outsiders);
        GenConfig {
            households: self.households,
            seed: self.seed,
            start: self.start.unwrap_or_else(default_start),
            months: self.months,
            hardship_share: self.hardship_share,
            noise,
        }
    }
}

/// The first of the month a year before today, so that the feeds end about now.
pub fn default_start() -> NaiveDate {
    let today = chrono::Local::now().date_naive();
    NaiveDate::from_ymd_opt(today.year() - 1, today.month(), 1).unwrap_or(today)
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.to_config();
    let earlier: Vec<PathBuf> = [
        "register.jsonl",
        "officers.jsonl",
        "regions.csv",
        "feeds",
        "truth",
        "snapshots",
        "native",
    ]
    .iter()
    .map(|p| args.out.join(p))
    .filter(|p| p.exists())
    .collect();
    if !earlier.is_empty() {
        if !args.force {
            let out = args.out.display();
            anyhow::bail!(tr!(
                "{out} 中已有生成的数据（另一次生成的数据文件会与新的混在一起）：请换一个 --out，或加 --force 替换",
                "{out} already holds generated data (feed files from another run would mix with the new ones); choose another --out or pass --force to replace it"
            ));
        }
        for p in earlier {
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.with_context(|| output::cannot("删除", "remove", &p))?;
        }
    }
    let summary = generate(&args.out, &cfg)?;
    if args.eval_csv {
        let n = write_eval_csv(&args.out, args.eval_without_id).context(t(
            "无法写入身份匹配评估文件",
            "cannot write the linkage evaluation files",
        ))?;
        let dir = args.out.join("eval");
        let dir = dir.display();
        say!(
            "已为 `doudi linkage eval` 写入 {n} 条记录到 {dir}",
            "wrote {n} records for `doudi linkage eval` to {dir}"
        );
    }
    if args.native {
        let n = write_native(&args.out)?;
        let dir = args.out.join("native");
        let dir = dir.display();
        say!(
            "已写入 {n} 个部门原始导出文件到 {dir}（每个数据格式一个目录，profile.toml 放在文件旁）",
            "wrote {n} native export files to {dir} (one folder per profile, profile.toml beside the files)"
        );
    }
    let events: usize = summary.events.values().sum();
    let (households, members, out) = (summary.households, summary.members, args.out.display());
    say!(
        "已生成 {households} 户（{members} 人）和 {events} 条部门记录，写入 {out}",
        "wrote {households} households ({members} members) and {events} events to {out}"
    );
    for (source, n) in &summary.events {
        match crate::lang::lang() {
            crate::lang::Lang::Zh => {
                println!("  {}  {n}", crate::lang::lang().source(source.code()))
            }
            crate::lang::Lang::En => println!("  {:<18} {n}", source.code()),
        }
    }
    let scenarios = summary.scenarios;
    say!(
        "  困难情形：{scenarios}",
        "  hardship scenarios: {scenarios}"
    );
    let file = |name: &str| args.out.join(name).display().to_string();
    let (register, officers, regions) = (
        file("register.jsonl"),
        file("officers.jsonl"),
        file("regions.csv"),
    );
    say!(
        "下一步：doudi import {register} && doudi officers import {officers} && doudi regions import {regions}",
        "next: doudi import {register} && doudi officers import {officers} && doudi regions import {regions}"
    );
    Ok(ExitCode::SUCCESS)
}

pub fn generate(out: &std::path::Path, cfg: &GenConfig) -> anyhow::Result<doudi_synth::GenSummary> {
    let bar = output::bar(
        cfg.households as u64,
        t("生成住户", "generating households"),
    );
    let summary = doudi_synth::write_dataset(out, cfg, &mut |done| bar.set_position(done))
        .with_context(|| {
            let out = out.display();
            tr!("无法在 {out} 中生成数据", "cannot generate data into {out}")
        })?;
    bar.finish_and_clear();
    let officers: String = doudi_synth::officers::officers(cfg.seed)
        .iter()
        .map(|o| format!("{o}\n"))
        .collect();
    let path = out.join("officers.jsonl");
    std::fs::write(&path, officers).with_context(|| output::cannot("写入", "write", &path))?;
    let path = out.join("regions.csv");
    std::fs::write(&path, regions_csv()).with_context(|| output::cannot("写入", "write", &path))?;
    Ok(summary)
}

/// DIR/regions.csv: every generated region's code and own name, under a `code,name` header (the
/// names hold no comma or quote, so no field needs quoting).
fn regions_csv() -> String {
    let mut text = String::from("code,name\n");
    for (code, name) in doudi_synth::region_names() {
        text.push_str(&code);
        text.push(',');
        text.push_str(&name);
        text.push('\n');
    }
    text
}

/// DIR/native/<layout>/: the envelope feeds in each department's layout, and the shipped profile
/// that reads them as profile.toml. Returns the number of export files.
fn write_native(out: &std::path::Path) -> anyhow::Result<usize> {
    let summary = doudi_synth::native::write_native(out).context(t(
        "无法写入部门原始导出文件",
        "cannot write the native export files",
    ))?;
    for layout in doudi_synth::native::LAYOUTS {
        let dir = out.join("native").join(layout.name);
        if !dir.exists() {
            continue;
        }
        let text = doudi_feeds::shipped::text(layout.name).with_context(|| {
            let name = layout.name;
            tr!(
                "格式 {name} 没有内置的数据格式说明",
                "no shipped profile for layout {name}"
            )
        })?;
        let path = dir.join("profile.toml");
        std::fs::write(&path, text).with_context(|| output::cannot("写入", "write", &path))?;
    }
    Ok(summary.files.values().sum())
}

/// DIR/eval/: `records.csv` (every feed record's subject), `register.csv` (every member),
/// `truth.csv` (record → member, for records about register members) and `spec.toml`. Without
/// ID numbers (`without_id`): no ID column, the name as family and given name, the birth date as
/// year, month and day. Returns the number of records.
fn write_eval_csv(out: &std::path::Path, without_id: bool) -> anyhow::Result<usize> {
    use std::io::{BufRead, Write};
    let dir = out.join("eval");
    std::fs::create_dir_all(&dir)?;
    let file = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        Ok(std::io::BufWriter::new(std::fs::File::create(
            dir.join(name),
        )?))
    };
    let header = if without_id {
        "rec_id,family,given,birth_year,birth_month,birth_day,sex,region\n"
    } else {
        "rec_id,id_no,name,birth,sex,region\n"
    };
    // one CSV row of a person: the id, then the person's columns
    let row = |id: &str, id_no: &str, name: &str, birth: &str, sex: &str, region: &str| {
        if without_id {
            let (family, given) = doudi_synth::split_name(name);
            let mut parts = birth.splitn(3, '-');
            let (y, m, d) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            format!("{id},{family},{given},{y},{m},{d},{sex},{region}\n")
        } else {
            format!("{id},{id_no},{name},{birth},{sex},{region}\n")
        }
    };
    let field = |v: &serde_json::Value, k: &str| -> String {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .replace([',', '"', '\n'], " ")
    };
    let mut register = file("register.csv")?;
    register.write_all(header.as_bytes())?;
    for line in std::io::BufReader::new(std::fs::File::open(out.join("register.jsonl"))?).lines() {
        let h: serde_json::Value = serde_json::from_str(&line?)?;
        let region = field(&h, "region_code");
        for m in h["members"].as_array().into_iter().flatten() {
            register.write_all(
                row(
                    &field(m, "member_id"),
                    &field(m, "id_number"),
                    &field(m, "name"),
                    &field(m, "birth_date"),
                    &field(m, "sex"),
                    &region,
                )
                .as_bytes(),
            )?;
        }
    }
    let mut records = file("records.csv")?;
    records.write_all(header.as_bytes())?;
    let mut n = 0;
    let mut sources: Vec<_> = std::fs::read_dir(out.join("feeds"))?.collect::<Result<_, _>>()?;
    sources.sort_by_key(|e| e.file_name());
    for source in sources {
        let mut files: Vec<_> = std::fs::read_dir(source.path())?.collect::<Result<_, _>>()?;
        files.sort_by_key(|e| e.file_name());
        for f in files {
            for line in std::io::BufReader::new(std::fs::File::open(f.path())?).lines() {
                let e: serde_json::Value = serde_json::from_str(&line?)?;
                let s = &e["subject"];
                records.write_all(
                    row(
                        &field(&e, "event_id"),
                        &field(s, "id_number"),
                        &field(s, "name"),
                        &field(s, "birth_date"),
                        &field(s, "sex"),
                        &field(s, "region_code"),
                    )
                    .as_bytes(),
                )?;
                n += 1;
            }
        }
    }
    let mut truth = file("truth.csv")?;
    truth.write_all(b"record,member\n")?;
    for line in
        std::io::BufReader::new(std::fs::File::open(out.join("truth/events.jsonl"))?).lines()
    {
        let t: serde_json::Value = serde_json::from_str(&line?)?;
        if let Some(member) = t["member_id"].as_str() {
            writeln!(truth, "{},{member}", field(&t, "event_id"))?;
        }
    }
    let spec = if without_id {
        "# doudi linkage eval --spec spec.toml --left records.csv --right register.csv --truth truth.csv\n\
         # No ID numbers: name parts, birth date parts, sex and region carry the decision.\n\
         id = \"rec_id\"\n\n\
         [[field]]\ncolumn = \"family\"\ntype = \"family_name\"\nblock = true\n\n\
         [[field]]\ncolumn = \"given\"\ntype = \"given_name\"\nblock = true\n\n\
         [[field]]\nname = \"birth\"\ncolumns = [\"birth_year\", \"birth_month\", \"birth_day\"]\ntype = \"date\"\ninvalid = \"missing\"\n\n\
         [[field]]\ncolumn = \"sex\"\ntype = \"code\"\n\n\
         [[field]]\ncolumn = \"region\"\ntype = \"code\"\n"
    } else {
        "# doudi linkage eval --spec spec.toml --left records.csv --right register.csv --truth truth.csv\n\
         id = \"rec_id\"\n\n\
         [[field]]\ncolumn = \"id_no\"\ntype = \"identity_number\"\n\n\
         [[field]]\ncolumn = \"name\"\ntype = \"person_name\"\n\n\
         [[field]]\ncolumn = \"birth\"\ntype = \"date\"\n\n\
         [[field]]\ncolumn = \"sex\"\ntype = \"code\"\n\n\
         [[field]]\ncolumn = \"region\"\ntype = \"code\"\n"
    };
    std::fs::write(dir.join("spec.toml"), spec)?;
    for w in [&mut register, &mut records, &mut truth] {
        w.flush()?;
    }
    Ok(n)
}
