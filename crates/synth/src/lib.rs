//! Synthetic register and feeds with ground truth and controlled noise.
//!
//! `doudi-synth` makes the data that `doudi gen`, `doudi demo`, the end-to-end tests and the
//! benchmarks run on: a register of low-income households in a handful of Lu'an counties
//! ([`generate_register`]) and a year (by default) of department feed events about them, with
//! hardship scenarios hidden among ordinary life events, typing noise on the records' subjects, and
//! the ground truth needed to score linkage and warnings ([`write_dataset`]).
//!
//! Everything is made up: no real person is described, and the crate never touches the network.
//! Output is a pure function of the [`GenConfig`]: the same configuration writes byte-identical
//! files on every machine and every run (ChaCha8 streams seeded from `seed`, no clocks, no hash-map
//! iteration order). A larger `households` keeps the register of a smaller one as its prefix.
//!
//! Layout of a dataset directory:
//! - `register.jsonl`: one [`doudi_model::Household`] per line (`doudi gen` adds `officers.jsonl`
//!   and `regions.csv`, the names of [`region_names`]);
//! - `feeds/<source>/<YYYY-MM>.jsonl`: event envelopes as [`doudi_model::parse_event`] reads
//!   them, sorted by `occurred_at` then `event_id`, one file per calendar month of the window;
//! - `truth/events.jsonl`: for every event, the member and household it is really about (`null`
//!   for outsiders) and the noise applied (labels in [`NOISE_LABELS`]);
//! - `truth/scenarios.jsonl`: for every hardship household, the scenario and its events;
//! - `truth/summary.json`: the [`GenSummary`] (with `dir` written as `"."`), the configuration
//!   and counts of noise labels and scenario kinds.
//!
//! ## The scenario mix (read a warning distribution against it)
//!
//! Households by category (weights): 低保 `dibao` 55, 特困 `tekun` 10, 低保边缘 `dibao_edge` 12,
//! 支出型 `expenditure` 5, 脱贫不稳定 `unstable` 8, 边缘易致贫 `edge_prone` 7, 突发 `sudden` 3; a
//! third of them urban (never `unstable` or `edge_prone`, which are rural). Per-capita income at
//! registration, as a share of the local 低保 standard: `dibao` 0–85 %, `tekun` none,
//! `dibao_edge` 102–145 %, `expenditure` 110–220 %, `unstable` 95–170 %, `edge_prone` 100–148 %,
//! `sudden` 50–160 %.
//!
//! `hardship_share` of the households (default 5 %) get one hardship scenario, by weight:
//!
//! | scenario | weight | what happens | what the rules should make of it |
//! |---|---|---|---|
//! | `serious_illness` | 35 | a diagnosis, 1–3 long stays in hospital with big bills, half of working patients stop work, a bill every few weeks to the end of the window | 支出型 (illness, medical burden, heavy bills); 急难 red when one bill is beyond the household's yearly capacity to pay |
//! | `job_loss` | 20 (households with an earner) | the main earner loses the job, registers as unemployed, contributions stop | 支出型/income (job loss, income below the line); 急难 red only when nobody left can work |
//! | `earner_death` | 15 (an earner and survivors) | the main earner dies (half after a stay in hospital) | orange when someone left can work; 急难 red when nobody can |
//! | `housing_crisis` | 15 | rural: 60 % a house appraised D (60 % of them move within 20–50 days), else a disaster (flood, landslide, fire, hail) makes the home uninhabitable and the household moves 3–20 days later (half forced); urban: a fire | 急难 red while the home is uninhabitable and not left; a D house is 支出型 orange |
//! | `severe_disability` | 15 (a member 5–75 without grade 1–2) | a member certified grade 1 or 2 (60 % after a stay in hospital), an earner so disabled loses the job, months of rehabilitation bills | 支出型 (disability, bills, job loss) |
//!
//! Background life, which should raise no serious risk: outpatient visits and small hospital
//! stays (more for the elderly), wage changes, new jobs, mild disabilities (grades 3–4),
//! marriages, births, divorces, property sold, household moves.

mod feeds;
mod names;
pub mod native;
mod noise;
pub mod officers;
mod regions;
mod register;
pub mod snapshots;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use doudi_model::{Event, Household, Source, ALL_SOURCES};

pub use names::split_name;
pub use noise::ALL_LABELS as NOISE_LABELS;

/// The rules (by id) that may rightly explain a planted hardship of `kind` (`serious_illness`,
/// `earner_death`, `job_loss`, `housing_crisis`, `severe_disability`): what the engine's findings
/// on a scenario household are checked against. `None` for a kind the generator does not plant.
pub fn scenario_causes(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "serious_illness" => &[
            "serious_illness",
            "medical_burden",
            "catastrophic_bill",
            "income_below_line",
            "job_loss",
        ],
        "earner_death" => &["death", "income_below_line"],
        "job_loss" => &["job_loss", "income_below_line"],
        "housing_crisis" => &["dangerous_house", "disaster_damage", "forced_relocation"],
        "severe_disability" => &[
            "severe_disability",
            "catastrophic_bill",
            "medical_burden",
            "income_below_line",
            "job_loss",
        ],
        _ => return None,
    })
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenConfig {
    pub households: usize,
    pub seed: u64,
    /// First day of the feed window; ages and enrolment dates are relative to it.
    pub start: NaiveDate,
    /// Window length in months (default 12).
    pub months: u32,
    /// Share of households given a hardship scenario (default 0.05).
    pub hardship_share: f64,
    pub noise: Noise,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            households: 1000,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            months: 12,
            hardship_share: 0.05,
            noise: Noise::default(),
        }
    }
}

impl GenConfig {
    /// Refuse configurations that cannot be generated, saying which field is wrong.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |m: String| Err(SynthError::Config(m));
        if !(1..=120).contains(&self.months) {
            return bad(format!("months must be 1 to 120, got {}", self.months));
        }
        if !(1950..=2200).contains(&self.start.year()) {
            return bad(format!(
                "start must be a date between 1950 and 2200, got {}",
                self.start
            ));
        }
        if !(0.0..=1.0).contains(&self.hardship_share) {
            return bad(format!(
                "hardship_share must be between 0 and 1, got {}",
                self.hardship_share
            ));
        }
        let n = &self.noise;
        for (field, v) in [
            ("wrong_digit", n.wrong_digit),
            ("swapped_digits", n.swapped_digits),
            ("legacy_15", n.legacy_15),
            ("missing_id", n.missing_id),
            ("homophone_name", n.homophone_name),
            ("traditional_name", n.traditional_name),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("noise.{field} must be between 0 and 1, got {v}"));
            }
        }
        if !(0.0..=0.5).contains(&n.outsiders) {
            return bad(format!(
                "noise.outsiders must be between 0 and 0.5, got {}",
                n.outsiders
            ));
        }
        let id_total = n.wrong_digit + n.swapped_digits + n.legacy_15 + n.missing_id;
        if id_total > 1.0 {
            return bad(format!(
                "noise on ID numbers (wrong_digit + swapped_digits + legacy_15 + missing_id) must \
                 total at most 1, got {id_total}"
            ));
        }
        Ok(())
    }
}

/// Rates of typing noise on event subjects (each a probability per event) and the share of
/// events about people outside the register (at most 0.5).
///
/// The four ID-number kinds exclude each other (at most one per event); the two name kinds may
/// combine, and combine with a swapped birth date. A kind that cannot apply is skipped, so two realised rates sit below the configured
/// ones: `legacy_15` applies only to people born 1900–1999 (about 3/4 of events), and
/// `traditional_name` only to names with a character whose traditional form differs (about
/// 3/4 of names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Noise {
    /// One of the first 17 digits of the ID number replaced (the check then fails).
    pub wrong_digit: f64,
    /// Two adjacent, different digits of the ID number swapped.
    pub swapped_digits: f64,
    /// The legacy 15-digit number (only for people born 1900–1999).
    pub legacy_15: f64,
    /// No ID number at all.
    pub missing_id: f64,
    /// One given-name character replaced by a same-pinyin one (张伟 → 张玮).
    pub homophone_name: f64,
    /// The name written in traditional characters (张伟 → 張偉), where any differ.
    pub traditional_name: f64,
    /// Birth date typed with day and month exchanged (1960-03-05 → 1960-05-03), where that is
    /// another real date (day 1–12, day ≠ month). Drawn without consuming the random stream, so
    /// the rest of a dataset is the same whatever this rate.
    pub swapped_birth_date: f64,
    /// Share of all events that are about generated people not in the register.
    pub outsiders: f64,
}

impl Default for Noise {
    fn default() -> Self {
        Noise {
            wrong_digit: 0.02,
            swapped_digits: 0.02,
            legacy_15: 0.02,
            missing_id: 0.02,
            homophone_name: 0.02,
            traditional_name: 0.02,
            swapped_birth_date: 0.02,
            outsiders: 0.03,
        }
    }
}

impl Noise {
    /// Clean feeds: every event is about a register member, with the member's exact ID number.
    pub fn none() -> Noise {
        Noise {
            wrong_digit: 0.0,
            swapped_digits: 0.0,
            legacy_15: 0.0,
            missing_id: 0.0,
            homophone_name: 0.0,
            traditional_name: 0.0,
            swapped_birth_date: 0.0,
            outsiders: 0.0,
        }
    }
}

/// What [`write_dataset`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GenSummary {
    pub households: usize,
    pub members: usize,
    /// Events written per source (outsiders included).
    pub events: BTreeMap<Source, usize>,
    /// Households given a hardship scenario.
    pub scenarios: usize,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid generator configuration: {0}")]
    Config(String),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The register: `cfg.households` households, a pure function of `seed`, `households` and `start`
/// (noise, window length and hardship share do not change it). Every household passes
/// [`Household::validate`] and ID numbers are unique across the register.
pub fn generate_register(cfg: &GenConfig) -> Vec<Household> {
    let regions = regions::Regions::build();
    let start = sane_start(cfg.start);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut ids = register::IdAlloc::default();
    (0..cfg.households)
        .map(|i| register::household(&mut rng, i, &regions, start, &mut ids))
        .collect()
}

/// The names of every region a generated household can live in, in code order: each county,
/// township and village code with the region's own name (`341502` 金安区, `341502003` 东河口镇,
/// `341502003004` 大塘村), the rows `doudi regions import` reads. The region tree is fixed (the
/// same for every seed), so the names are too.
pub fn region_names() -> Vec<(String, String)> {
    regions::Regions::build().names()
}

/// A start date inside the range [`GenConfig::validate`] accepts.
fn sane_start(start: NaiveDate) -> NaiveDate {
    if (1950..=2200).contains(&start.year()) {
        start
    } else {
        GenConfig::default().start
    }
}

fn source_prefix(s: Source) -> &'static str {
    match s {
        Source::HealthInsurance => "yb",
        Source::Employment => "rs",
        Source::Housing => "zj",
        Source::CivilRegistry => "hj",
    }
}

fn month_index(start: NaiveDate, d: NaiveDate) -> usize {
    let a = start.year() as i64 * 12 + start.month0() as i64;
    let b = d.year() as i64 * 12 + d.month0() as i64;
    usize::try_from(b - a).unwrap_or(0)
}

struct Out {
    path: PathBuf,
    w: BufWriter<File>,
}

impl Out {
    fn create(path: PathBuf) -> Result<Out, SynthError> {
        let f = File::create(&path).map_err(io_err(&path))?;
        Ok(Out {
            w: BufWriter::with_capacity(1 << 16, f),
            path,
        })
    }

    fn json_line<T: Serialize>(&mut self, v: &T) -> Result<(), SynthError> {
        serde_json::to_writer(&mut self.w, v)
            .map_err(io::Error::from)
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(io_err(&self.path))
    }

    fn raw_line(&mut self, line: &str) -> Result<(), SynthError> {
        self.w
            .write_all(line.as_bytes())
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(io_err(&self.path))
    }

    fn finish(mut self) -> Result<(), SynthError> {
        self.w.flush().map_err(io_err(&self.path))
    }
}

#[derive(Serialize)]
struct TruthEvent<'a> {
    event_id: &'a str,
    source: Source,
    member_id: Option<&'a str>,
    household_id: Option<&'a str>,
    noise: &'a [&'static str],
}

#[derive(Serialize)]
struct TruthScenario<'a> {
    household_id: &'a str,
    scenario: &'a str,
    event_ids: &'a [String],
}

#[derive(Serialize)]
struct SummaryFile<'a> {
    #[serde(flatten)]
    summary: &'a GenSummary,
    config: &'a GenConfig,
    /// Events carrying each noise label.
    noise_counts: BTreeMap<&'static str, usize>,
    /// Households per scenario kind.
    scenario_counts: BTreeMap<&'static str, usize>,
}

/// Generate the register and feeds for `cfg` and write them under `dir` (created if missing;
/// files already there are overwritten). `progress` is told how many households are done, now and
/// then and once at the end.
pub fn write_dataset(
    dir: &Path,
    cfg: &GenConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<GenSummary, SynthError> {
    cfg.validate()?;
    let window = feeds::Window::new(cfg.start, cfg.months)
        .ok_or_else(|| SynthError::Config(format!("window from {} overflows", cfg.start)))?;
    let last_day = window.end.pred_opt().unwrap_or(window.start);
    let n_months = month_index(window.start, last_day) + 1;
    let tz = FixedOffset::east_opt(8 * 3600)
        .ok_or_else(|| SynthError::Config("UTC+8 offset unavailable".into()))?;

    for sub in [PathBuf::new(), PathBuf::from("truth")].into_iter().chain(
        ALL_SOURCES
            .iter()
            .map(|s| Path::new("feeds").join(s.code())),
    ) {
        let p = dir.join(sub);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
    }

    let register = generate_register(cfg);
    let mut out = Out::create(dir.join("register.jsonl"))?;
    for h in &register {
        out.json_line(h)?;
    }
    out.finish()?;
    snapshots::write_for_dataset(dir, &register, cfg)?;

    let window_start = window.start;
    let ctx = feeds::Ctx {
        regions: &regions::Regions::build(),
        window,
        hardship_share: cfg.hardship_share,
        outsiders: cfg.noise.outsiders,
    };
    let mut ids = register::IdAlloc::from_register(&register);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(1);

    let mut buckets: Vec<Vec<(NaiveDateTime, u64, String)>> = (0..ALL_SOURCES.len() * n_months)
        .map(|_| Vec::new())
        .collect();
    let mut truth = Out::create(dir.join("truth").join("events.jsonl"))?;
    let mut scen = Out::create(dir.join("truth").join("scenarios.jsonl"))?;
    let mut events: BTreeMap<Source, usize> = ALL_SOURCES.iter().map(|s| (*s, 0)).collect();
    let mut noise_counts: BTreeMap<&'static str, usize> =
        noise::ALL_LABELS.iter().map(|l| (*l, 0)).collect();
    let mut scenario_counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut counter: u64 = 0;
    let mut scenarios = 0usize;
    let mut labels: Vec<&'static str> = Vec::with_capacity(4);

    for (hi, h) in register.iter().enumerate() {
        let feed = feeds::household(&mut rng, h, &ctx, &mut ids);
        let mut scenario_ids = Vec::new();
        for d in feed.drafts {
            counter += 1;
            let source = d.source();
            let event_id = format!("{}-{counter:09}", source_prefix(source));
            labels.clear();
            let (subject, member_id) = match &d.who {
                feeds::Who::Member(i) => {
                    let Some(m) = h.members.get(*i) else { continue };
                    let t = noise::Truth {
                        id: &m.id_number,
                        name: &m.name,
                        birth: m.birth_date,
                        sex: m.sex,
                        region: Some(&h.region_code),
                    };
                    let s = noise::subject(&mut rng, &t, &cfg.noise, &mut labels);
                    (s, Some(m.member_id.as_str()))
                }
                feeds::Who::Outsider(p) => {
                    labels.push(noise::OUTSIDER);
                    let t = noise::Truth {
                        id: &p.id,
                        name: &p.name,
                        birth: p.birth,
                        sex: p.sex,
                        region: p.region.as_ref(),
                    };
                    (noise::subject(&mut rng, &t, &cfg.noise, &mut labels), None)
                }
            };
            let event = Event {
                event_id,
                source,
                occurred_at: DateTime::from_naive_utc_and_offset(d.at - TimeDelta::hours(8), tz),
                subject,
                payload: d.payload,
            };
            let line = serde_json::to_string(&event).map_err(|e| SynthError::Io {
                path: dir.join("feeds").join(source.code()),
                source: e.into(),
            })?;
            let month = month_index(window_start, d.at.date()).min(n_months - 1);
            let src_i = ALL_SOURCES.iter().position(|s| *s == source).unwrap_or(0);
            buckets[src_i * n_months + month].push((d.at, counter, line));
            *events.entry(source).or_insert(0) += 1;
            for l in &labels {
                *noise_counts.entry(l).or_insert(0) += 1;
            }
            truth.json_line(&TruthEvent {
                event_id: &event.event_id,
                source,
                member_id,
                household_id: member_id.map(|_| h.household_id.as_str()),
                noise: &labels,
            })?;
            if d.scenario {
                scenario_ids.push(event.event_id);
            }
        }
        if let Some(kind) = feed.scenario {
            scenarios += 1;
            *scenario_counts.entry(kind).or_insert(0) += 1;
            scen.json_line(&TruthScenario {
                household_id: &h.household_id,
                scenario: kind,
                event_ids: &scenario_ids,
            })?;
        }
        if (hi + 1) % 1000 == 0 {
            progress((hi + 1) as u64);
        }
    }
    truth.finish()?;
    scen.finish()?;

    for (si, source) in ALL_SOURCES.iter().enumerate() {
        for mi in 0..n_months {
            let month = window_start
                .with_day(1)
                .and_then(|d| d.checked_add_months(chrono::Months::new(mi as u32)))
                .unwrap_or(window_start);
            let path = dir.join("feeds").join(source.code()).join(format!(
                "{:04}-{:02}.jsonl",
                month.year(),
                month.month()
            ));
            let mut bucket = std::mem::take(&mut buckets[si * n_months + mi]);
            bucket.sort_unstable_by_key(|a| (a.0, a.1));
            let mut out = Out::create(path)?;
            for (_, _, line) in &bucket {
                out.raw_line(line)?;
            }
            out.finish()?;
        }
    }

    let summary = GenSummary {
        households: register.len(),
        members: register.iter().map(|h| h.members.len()).sum(),
        events,
        scenarios,
        dir: dir.to_path_buf(),
    };
    let in_file = GenSummary {
        dir: PathBuf::from("."),
        ..summary.clone()
    };
    let path = dir.join("truth").join("summary.json");
    let text = serde_json::to_string_pretty(&SummaryFile {
        summary: &in_file,
        config: cfg,
        noise_counts,
        scenario_counts,
    })
    .map_err(|e| SynthError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    fs::write(&path, text + "\n").map_err(io_err(&path))?;
    progress(register.len() as u64);
    Ok(summary)
}
