//! A dry run's findings (`doudi feeds check`): what a file held, every refused row, and a few
//! sample events with personal data masked.

use doudi_model::{mask_id_str, mask_name, Event};
use serde::Serialize;
use serde_json::Value;

use crate::error::RowError;
use crate::profile::{Profile, Provenance};
use crate::read::{FeedReader, Stats};

/// A refused row (the row's own cells are never part of it).
pub type Refusal = RowError;

/// One file's findings.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    pub file: String,
    pub format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(flatten)]
    pub stats: Stats,
    pub refusals: Vec<Refusal>,
    /// Why the file could not be read (to its end), if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The findings of a dry run over one or more files read with one profile.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub profile: Provenance,
    pub source: &'static str,
    pub files: Vec<FileReport>,
    /// The first events made, masked.
    pub samples: Vec<Value>,
    #[serde(skip)]
    sample_limit: usize,
}

impl CheckReport {
    pub fn new(profile: &Profile, sample_limit: usize) -> Self {
        CheckReport {
            profile: profile.provenance(),
            source: profile.source.code(),
            files: Vec::new(),
            samples: Vec::new(),
            sample_limit,
        }
    }

    /// Read a whole file, keeping counts, refusals and samples. `progress` is called every few
    /// thousand rows with [`FeedReader::progress`].
    pub fn check(&mut self, mut reader: FeedReader, progress: &mut dyn FnMut(u64, Option<u64>)) {
        let mut refusals = Vec::new();
        let mut error = None;
        let mut n = 0u64;
        while let Some(row) = reader.next() {
            n += 1;
            if n & 0xFFF == 0 {
                let (done, total) = reader.progress();
                progress(done, total);
            }
            match row {
                Ok(r) => match r.result {
                    Ok(e) => {
                        if self.samples.len() < self.sample_limit {
                            self.samples.push(mask_event(&e));
                        }
                    }
                    Err(refused) => refusals.push(refused),
                },
                Err(e) => error = Some(e.to_string()),
            }
        }
        let (done, total) = reader.progress();
        progress(done, total);
        self.files.push(FileReport {
            file: reader.file().to_string(),
            format: reader.profile().file.format.describe(),
            encoding: reader.encoding().map(|e| e.describe()),
            sheet: reader.sheet().map(str::to_string),
            stats: reader.stats().clone(),
            refusals,
            error,
        });
    }

    /// Record a file that could not be opened at all.
    pub fn unreadable(&mut self, file: &str, profile: &Profile, error: String) {
        self.files.push(FileReport {
            file: file.to_string(),
            format: profile.file.format.describe(),
            encoding: None,
            sheet: None,
            stats: Stats::default(),
            refusals: Vec::new(),
            error: Some(error),
        });
    }

    /// Every row made an event or was passed over by a rule, and every file was read to its end.
    pub fn clean(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.refusals.is_empty() && f.error.is_none())
    }

    /// The files' counts added up.
    pub fn totals(&self) -> Stats {
        let mut t = Stats::default();
        for f in &self.files {
            t.rows += f.stats.rows;
            t.events += f.stats.events;
            t.refused += f.stats.refused;
            t.blank += f.stats.blank;
            for (k, v) in &f.stats.skipped {
                *t.skipped.entry(k.clone()).or_insert(0) += v;
            }
            for (k, v) in &f.stats.by_kind {
                *t.by_kind.entry(k).or_insert(0) += v;
            }
        }
        t
    }
}

/// An event as JSON with personal data masked: ID numbers (`341523********1788`), names (`林**`),
/// birth dates (year only), and the same for a child's or spouse's.
pub fn mask_event(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    for (obj, id_keys, name_keys) in [
        ("subject", &["id_number"][..], &["name"][..]),
        (
            "data",
            &["child_id_number", "spouse_id_number"][..],
            &["child_name", "spouse_name"][..],
        ),
    ] {
        let Some(o) = v.get_mut(obj).and_then(Value::as_object_mut) else {
            continue;
        };
        for k in id_keys {
            if let Some(Value::String(s)) = o.get_mut(*k) {
                *s = mask_id_str(s);
            }
        }
        for k in name_keys {
            if let Some(Value::String(s)) = o.get_mut(*k) {
                *s = mask_name(s);
            }
        }
        if let Some(Value::String(s)) = o.get_mut("birth_date") {
            *s = format!("{}-**-**", s.get(..4).unwrap_or("****"));
        }
    }
    v
}
