//! HTTP push of a department's feed: `POST /api/feeds/{source}` with a batch of JSON envelope
//! lines (`application/x-ndjson`, one event per line, as in a feed file), for a `feeder` token
//! scoped to that one source.
//!
//! - **Whole batch or nothing.** Every line is validated as the feed reader validates it
//!   ([`doudi_model::parse_event`] with `ingest.limits`, and the event's source must be the
//!   path's). One refused line refuses the batch: 422 `unprocessable`, nothing stored, each refused
//!   line named by its number and why (the reason never quotes a value of the line). Blank lines
//!   are passed over; a batch with no event is refused too.
//! - **Acknowledged once durable.** The batch's new events are appended to
//!   `<feeds>/<source>/push-<UTC date>.jsonl`, the file and (when it is created) its folder
//!   fsynced, before the 200 answer; appends to one source are serialised. `doudi run` reads that
//!   file like any feed file (the service does not ingest).
//! - **Idempotent by event id.** An id already pushed (in a `push-*.jsonl` file of the source's
//!   folder, as this process knows them) or already stored in `events`, or repeated within the
//!   batch, is answered as a duplicate and not appended again. What one process cannot know
//!   (another `serve`'s appends, ids past the remembered ones) the store still keeps once: events
//!   are unique by source and id.
//! - **Limits.** A body over `serve.push_max_bytes` is 413; a token over
//!   `serve.push_batches_per_minute` batches in the last minute is 429.
//! - **A department's own export** (`?profile=NAME`, a profile listed in `serve.push_profiles`):
//!   the body is the export as the department writes it (CSV, Excel, JSON lines, fixed width, in
//!   the profile's encoding), read through the profile; one refused row refuses the batch (422,
//!   rows named by number and column, never by value). Kept as the department sent it: the batch
//!   becomes one file of `<feeds>/push-<profile>-v<version>/` with the profile beside it as
//!   `profile.toml`, written whole (a temporary name, fsynced, then renamed) so that `doudi run`
//!   reads it like a dropped export, row positions and profile version recorded.
//! - **Kafka mode** (`serve.push_to = "kafka"`): the events are produced to the source's topic
//!   (keyed by person, the profile's `name@version` in a header) and the answer waits until every
//!   one is acknowledged by all in-sync replicas (`acks=all`, idempotent producer).
//! - **Several `doudi serve` on one folder**: appends hold an exclusive lock on
//!   `<folder>/.push.lock`, so two processes never interleave a batch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use doudi_model::{parse_event, Source};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::principal::{Principal, Role};
use crate::AppState;

/// The media type of a pushed batch.
pub const NDJSON: &str = "application/x-ndjson";

/// Refused lines named in one answer at most (the count of the rest follows).
const MAX_NAMED_LINES: usize = 20;

/// Event ids a Kafka-mode push remembers per source (the most recent ones): a repeat of an older
/// batch is produced again and stored once all the same (events are unique by source and id).
const KAFKA_RECENT_IDS: usize = 1_000_000;

/// How long a Kafka-mode push waits for the brokers' acknowledgements before answering 503 (the
/// source's other pushes wait behind it).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Event ids a folder-mode push remembers per source (read from the `push-*.jsonl` files at
/// first use, then added to): past it the set starts afresh, and the store's unique
/// (source, event id) still keeps a repeat once.
const FOLDER_RECENT_IDS: usize = 2_000_000;

/// Where accepted events go when not to the feeds folder: implemented by the binary over a Kafka
/// producer (`serve.push_to = "kafka"`).
pub trait PushSink: Send + Sync + std::fmt::Debug {
    /// Publish `lines` (one envelope event's JSON each) of `source`, made by the feed profile
    /// `profile` (`name@version`) if any, and finish only once every line is durably
    /// acknowledged. `Ok`: where they went (for the answer, e.g. the topic); `Err`: why not
    /// (nothing may be taken as stored).
    fn publish<'a>(
        &'a self,
        source: Source,
        lines: Vec<Vec<u8>>,
        profile: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;
}

/// A feed profile a feeder may push exports in, with its text (written beside the pushed files
/// so that `doudi run` reads them through the very same profile).
#[derive(Clone, Debug)]
pub struct PushProfile {
    pub profile: Arc<doudi_feeds::Profile>,
    pub text: String,
}

impl PushProfile {
    /// The media type a pushed export of this profile must be sent as.
    pub fn media_type(&self) -> &'static str {
        use doudi_feeds::Format;
        match self.profile.file.format {
            Format::Csv => "text/csv",
            Format::Xlsx => XLSX,
            Format::Jsonl => NDJSON,
            Format::FixedWidth => "text/plain",
        }
    }

    fn extension(&self) -> &'static str {
        use doudi_feeds::Format;
        match self.profile.file.format {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Jsonl => "jsonl",
            Format::FixedWidth => "txt",
        }
    }

    /// The folder (under the feeds folder) its pushed exports are kept in: one per profile
    /// version, so that a file is always read through the version it was checked with.
    pub fn folder(&self) -> String {
        format!("push-{}-v{}", self.profile.name, self.profile.version)
    }
}

/// The media type of an Excel workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// `?profile=NAME`: the batch is a department's export in that profile's format.
#[derive(Debug, Default, Deserialize)]
pub struct PushQuery {
    #[serde(default)]
    pub profile: Option<String>,
}

/// One source's ids already pushed (`None` until read from the folder), behind the lock that
/// serialises its appends.
type SourceLog = Arc<tokio::sync::Mutex<Option<HashSet<String>>>>;

/// The push's shared state: per source, the ids already pushed (read from the folder on first
/// use) behind the lock that serialises appends; per token, its recent batches.
pub struct PushState {
    sources: Mutex<HashMap<Source, SourceLog>>,
    limiter: BatchLimiter,
}

impl PushState {
    pub fn new(batches_per_minute: u32) -> PushState {
        PushState {
            sources: Mutex::new(HashMap::new()),
            limiter: BatchLimiter::new(batches_per_minute, Duration::from_secs(60)),
        }
    }

    fn source_lock(&self, source: Source) -> SourceLog {
        let mut map = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(source).or_default().clone()
    }
}

/// Batches per token in a sliding window.
pub struct BatchLimiter {
    per_window: usize,
    window: Duration,
    seen: Mutex<HashMap<i64, VecDeque<Instant>>>,
}

impl BatchLimiter {
    pub fn new(per_window: u32, window: Duration) -> BatchLimiter {
        BatchLimiter {
            per_window: usize::try_from(per_window.max(1)).unwrap_or(usize::MAX),
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Count a batch of `token`; `false` when it is over its quota (and then not counted).
    pub fn admit(&self, token: i64) -> bool {
        let now = Instant::now();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = seen.entry(token).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.per_window {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// One accepted line of a batch.
struct Line<'a> {
    number: usize,
    event_id: String,
    bytes: &'a [u8],
}

/// Validate every line of `body` as an envelope of `source`: the events, or every refusal
/// (`line N: code: why`).
fn validate<'a>(
    body: &'a [u8],
    source: Source,
    limits: &doudi_model::ParseLimits,
) -> Result<Vec<Line<'a>>, Vec<String>> {
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_event(raw, limits) {
            Ok(e) if e.source != source => refused.push(format!(
                "line {number}: source_mismatch: the event says source {:?} but was pushed to {:?}",
                e.source.code(),
                source.code()
            )),
            Ok(e) => lines.push(Line {
                number,
                event_id: e.event_id,
                bytes: raw,
            }),
            Err(e) => refused.push(format!("line {number}: {}: {e}", e.code())),
        }
    }
    if refused.is_empty() {
        Ok(lines)
    } else {
        Err(refused)
    }
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    event_id: Option<String>,
}

/// The event ids in the source folder's `push-*.jsonl` files (a line that is not an envelope,
/// which the push never writes, is passed over here: the worker dead-letters it).
fn pushed_ids(folder: &FsPath) -> std::io::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let entries = match std::fs::read_dir(folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("push-") && name.ends_with(".jsonl")) {
            continue;
        }
        let text = std::fs::read(entry.path())?;
        for line in text.split(|b| *b == b'\n') {
            if let Ok(IdOnly { event_id: Some(id) }) = serde_json::from_slice::<IdOnly>(line) {
                ids.insert(id.trim().to_string());
            }
        }
    }
    Ok(ids)
}

/// Append `lines` to `file` (in `folder`, created if missing) and make them durable: the file
/// fsynced, and the folder too when the file (or the folder) is new. On a failed write the file
/// is cut back to its length before, so that no half batch stays.
fn append_durably(folder: &FsPath, file: &FsPath, data: &[u8]) -> std::io::Result<()> {
    let folder_new = !folder.exists();
    if folder_new {
        std::fs::create_dir_all(folder)?;
    }
    let _lock = lock_folder(folder)?;
    let file_new = !file.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let before = f.metadata()?.len();
    if let Err(e) = f.write_all(data).and_then(|()| f.sync_all()) {
        let _ = f.set_len(before).and_then(|()| f.sync_all());
        return Err(e);
    }
    if file_new || folder_new {
        std::fs::File::open(folder)?.sync_all()?;
    }
    if folder_new {
        if let Some(parent) = folder.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "push: {what}");
    ApiError::Internal(format!("push: {what}: {e}"))
}

/// The batch as events: each event's id and its envelope JSON.
struct Batch {
    events: Vec<(String, Vec<u8>)>,
    /// Each event's line or row in the body (for the duplicates named in the answer).
    numbers: Vec<u64>,
}

/// The refusal of a whole batch: `what` names the unit ("line(s)", "row(s)").
fn refuse_whole(refused: Vec<String>, what: &str) -> ApiError {
    let n = refused.len();
    let more = n.saturating_sub(MAX_NAMED_LINES);
    let mut text = format!(
        "the batch is refused whole, nothing was stored: {n} {what} refused: {}",
        refused[..n.min(MAX_NAMED_LINES)].join("; ")
    );
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    ApiError::Unprocessable(text)
}

/// Read a department's export through its profile: every event, or every refused row
/// (`row N, column C: why`, never a cell's value).
fn read_export(p: &PushProfile, body: Vec<u8>) -> Result<Batch, Vec<String>> {
    let name = format!("batch.{}", p.extension());
    let reader = doudi_feeds::FeedReader::from_bytes(Arc::clone(&p.profile), &name, body)
        .map_err(|e| vec![e.to_string()])?;
    let mut batch = Batch {
        events: Vec::new(),
        numbers: Vec::new(),
    };
    let mut refused = Vec::new();
    for row in reader {
        match row {
            Ok(row) => match row.result {
                Ok(event) => {
                    batch.numbers.push(row.position.row);
                    batch
                        .events
                        .push((event.event_id.clone(), event.to_json().into_bytes()));
                }
                Err(e) => refused.push(e.to_string()),
            },
            // The export cannot be read on (cut short, over the profile's row limit, …).
            Err(e) => refused.push(e.to_string()),
        }
    }
    if refused.is_empty() {
        Ok(batch)
    } else {
        Err(refused)
    }
}

/// Write a pushed export whole as a new file of `folder` (created with the profile beside it as
/// `profile.toml`): under a hidden temporary name, fsynced, renamed, the folder fsynced. Returns
/// the file's name; `None` when the very same batch is already there (a retry).
fn write_export(
    folder: &FsPath,
    profile_text: &str,
    ext: &str,
    body: &[u8],
) -> std::io::Result<Option<String>> {
    use sha2::Digest;
    let folder_new = !folder.exists();
    std::fs::create_dir_all(folder)?;
    let lock = lock_folder(folder)?;
    let profile_file = folder.join(doudi_pipeline::files::PROFILE_FILE);
    if !profile_file.exists() {
        let tmp = folder.join(".profile.toml.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(profile_text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &profile_file)?;
    }
    let digest = hex::encode(sha2::Sha256::digest(body));
    let name = format!(
        "push-{}-{}.{ext}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        &digest[..16]
    );
    // The same batch pushed again (a retry after a lost answer) is already here.
    let same = format!("-{}.{ext}", &digest[..16]);
    for entry in std::fs::read_dir(folder)? {
        let n = entry?.file_name().to_string_lossy().into_owned();
        if n.starts_with("push-") && n.ends_with(&same) {
            return Ok(None);
        }
    }
    let tmp = folder.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    if let Err(e) = f.write_all(body).and_then(|()| f.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, folder.join(&name))?;
    std::fs::File::open(folder)?.sync_all()?;
    if folder_new {
        if let Some(parent) = folder.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    drop(lock);
    Ok(Some(name))
}

/// An exclusive lock on `<folder>/.push.lock`, held while a batch is written: several
/// `doudi serve` processes may push into one feeds folder.
fn lock_folder(folder: &FsPath) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(folder.join(".push.lock"))?;
    f.lock()?;
    Ok(f)
}

/// `POST /api/feeds/{source}`: a batch from the source's feeder: envelope lines, or with
/// `?profile=NAME` the department's own export.
pub async fn push_feed(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(source): Path<String>,
    Query(query): Query<PushQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(source) = Source::from_code(&source) else {
        return Err(ApiError::NotFound(format!(
            "no feed {source:?} (known: health_insurance, employment, housing, civil_registry)"
        )));
    };
    if who.role != Role::Feeder || who.feed_source.as_deref() != Some(source.code()) {
        return Err(ApiError::Forbidden(format!(
            "token #{} may not push to {}: it pushes {}",
            who.token_id,
            source.code(),
            who.feed_source.as_deref().unwrap_or("nothing")
        )));
    }
    if !state.push().limiter.admit(who.token_id) {
        tracing::warn!(
            token = who.token_id,
            "push: a feeder over its batch rate: answering 429"
        );
        return Err(ApiError::TooManyRequests(format!(
            "token #{} sent more than {} batches in the last minute (serve.push_batches_per_minute): wait and send again",
            who.token_id,
            state.config().push_batches_per_minute
        )));
    }
    let profile = match query.profile.as_deref() {
        None => None,
        Some(name) => {
            let known = &state.config().push_profiles;
            let Some(p) = known.iter().find(|p| p.profile.name == name) else {
                let names: Vec<&str> = known.iter().map(|p| p.profile.name.as_str()).collect();
                return Err(ApiError::Unprocessable(format!(
                    "no push profile {name:?}: serve.push_profiles lists {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            if p.profile.source != source {
                return Err(ApiError::Unprocessable(format!(
                    "profile {name:?} makes {} events, not {}: push it to /api/feeds/{}",
                    p.profile.source.code(),
                    source.code(),
                    p.profile.source.code()
                )));
            }
            Some(p.clone())
        }
    };
    let expected = profile.as_ref().map_or(NDJSON, PushProfile::media_type);
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some(expected) {
        // A media type the document lists for this operation, but not the one this batch needs
        // (CSV without a profile, an Excel body for a CSV profile): a rule stated in words, 422;
        // any other media type: 415.
        let documented = matches!(
            media.as_deref(),
            Some(NDJSON | XLSX | "text/csv" | "text/plain")
        );
        let refuse = if documented {
            ApiError::Unprocessable
        } else {
            ApiError::UnsupportedMediaType
        };
        return Err(refuse(match &profile {
            None => format!("send the batch as `Content-Type: {NDJSON}`: one JSON envelope per line (or a department's export with ?profile=NAME)"),
            Some(p) => format!(
                "profile {:?} reads {}: send the export as `Content-Type: {expected}`",
                p.profile.name,
                p.profile.file.format.describe()
            ),
        }));
    }
    let batch = match &profile {
        None => match validate(&body, source, &state.config().parse_limits) {
            Ok(lines) => Batch {
                numbers: lines.iter().map(|l| l.number as u64).collect(),
                events: lines
                    .into_iter()
                    .map(|l| (l.event_id, l.bytes.to_vec()))
                    .collect(),
            },
            Err(refused) => return Err(refuse_whole(refused, "line(s)")),
        },
        Some(p) => {
            let (p2, raw) = (p.clone(), body.to_vec());
            match tokio::task::spawn_blocking(move || read_export(&p2, raw))
                .await
                .map_err(|e| internal("reading the export", e))?
            {
                Ok(b) => b,
                Err(refused) => return Err(refuse_whole(refused, "row(s)")),
            }
        }
    };
    if batch.events.is_empty() {
        return Err(ApiError::Unprocessable(match &profile {
            None => "the batch holds no event: send one JSON envelope per line".into(),
            Some(p) => format!(
                "the export holds no row that profile {:?} makes an event of",
                p.profile.name
            ),
        }));
    }

    let sink = state.config().push_sink.clone();
    let folder: PathBuf = match (&profile, &sink) {
        (Some(p), None) => state.config().feeds_dir.join(p.folder()),
        _ => state.config().feeds_dir.join(source.code()),
    };
    let lock = state.push().source_lock(source);
    let mut known = lock.lock().await;
    if known.is_none() {
        let ids = if sink.is_some() {
            HashSet::new()
        } else {
            let f = state.config().feeds_dir.join(source.code());
            tokio::task::spawn_blocking(move || pushed_ids(&f))
                .await
                .map_err(|e| internal("reading pushed ids", e))?
                .map_err(|e| internal("reading the feed folder", e))?
        };
        *known = Some(ids);
    }
    let known_ids = known.get_or_insert_with(HashSet::new);
    let asked: Vec<&str> = batch
        .events
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !known_ids.contains(*id))
        .collect();
    let stored = state
        .store()
        .stored_event_ids(source.code(), &asked)
        .await?;
    let mut fresh: HashSet<&str> = HashSet::new();
    let mut duplicate_lines = Vec::new();
    let mut new_lines = Vec::new();
    let mut new_ids = Vec::new();
    let mut new_numbers = Vec::new();
    for ((id, json), number) in batch.events.iter().zip(&batch.numbers) {
        if known_ids.contains(id.as_str()) || stored.contains(id.as_str()) || !fresh.insert(id) {
            duplicate_lines.push(*number);
            continue;
        }
        new_lines.push(json.clone());
        new_ids.push(id.clone());
        new_numbers.push(*number);
    }
    let mut accepted = new_ids.len();
    let provenance = profile.as_ref().map(|p| p.profile.provenance().to_string());
    let unit = if profile.is_some() { "rows" } else { "lines" };
    let stored_at: Option<String> = if new_lines.is_empty() {
        None
    } else if let Some(sink) = &sink {
        let at = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            sink.publish(source, new_lines, provenance.as_deref()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the brokers did not acknowledge within {} s",
                PUBLISH_TIMEOUT.as_secs()
            ))
        })
        .map_err(|e| {
                tracing::error!(source = source.code(), error = %e, "push: publishing failed");
                ApiError::Unavailable(format!(
                    "the batch could not be published, nothing may be taken as stored: {e}; send it again (it is idempotent)"
                ))
            })?;
        Some(at)
    } else if let Some(p) = &profile {
        // The export itself, as the department sent it (duplicates in it are stored once).
        let (f, text, ext, raw) = (folder.clone(), p.text.clone(), p.extension(), body.to_vec());
        let name = tokio::task::spawn_blocking(move || write_export(&f, &text, ext, &raw))
            .await
            .map_err(|e| internal("writing the export", e))?
            .map_err(|e| internal("writing the export to the feeds folder", e))?;
        match name {
            Some(n) => Some(format!("{}/{n}", p.folder())),
            None => {
                // The very same export is already kept (a process that no longer remembers its
                // ids, after a restart): its rows are duplicates, not accepted again.
                accepted = 0;
                duplicate_lines.extend(new_numbers);
                duplicate_lines.sort_unstable();
                None
            }
        }
    } else {
        let mut data = Vec::with_capacity(body.len() + new_lines.len());
        for l in &new_lines {
            data.extend_from_slice(l);
            data.push(b'\n');
        }
        let name = format!("push-{}.jsonl", chrono::Utc::now().format("%Y-%m-%d"));
        let (f, file) = (folder.clone(), folder.join(&name));
        tokio::task::spawn_blocking(move || append_durably(&f, &file, &data))
            .await
            .map_err(|e| internal("appending", e))?
            .map_err(|e| internal("appending to the feed file", e))?;
        Some(format!("{}/{name}", source.code()))
    };
    let cap = if sink.is_some() {
        KAFKA_RECENT_IDS
    } else {
        FOLDER_RECENT_IDS
    };
    if known_ids.len() + new_ids.len() > cap {
        known_ids.clear();
    }
    known_ids.extend(new_ids);
    drop(known);
    tracing::info!(
        source = source.code(),
        token = who.token_id,
        accepted,
        duplicates = duplicate_lines.len(),
        profile = provenance.as_deref().unwrap_or("-"),
        "push: batch stored"
    );
    let mut answer = json!({
        "source": source.code(),
        "accepted": accepted,
        "duplicates": duplicate_lines.len(),
        "duplicate_lines": duplicate_lines,
    });
    match (&sink, stored_at) {
        (Some(_), at) => answer["topic"] = json!(at),
        (None, at) => answer["file"] = json!(at),
    }
    if let Some(p) = provenance {
        answer["profile"] = json!(p);
        answer["unit"] = json!(unit);
    }
    Ok(Json(answer).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_admits_a_quota_per_token_per_window() {
        let l = BatchLimiter::new(2, Duration::from_millis(40));
        assert!(l.admit(1) && l.admit(1));
        assert!(!l.admit(1), "third batch in the window");
        assert!(l.admit(2), "another token has its own quota");
        std::thread::sleep(Duration::from_millis(50));
        assert!(l.admit(1), "the window has passed");
    }

    #[test]
    fn a_refused_line_is_named_by_number_without_its_values() {
        let good = r#"{"event_id":"e1","source":"civil_registry","kind":"death","occurred_at":"2026-03-01T08:00:00+08:00","subject":{"id_number":"341502199001011234"},"data":{"died_on":"2026-03-01"}}"#;
        let body = format!("{good}\n\n{{\"event_id\":\"e2\",\"source\":\"civil_registry\",\"kind\":\"death\",\"occurred_at\":\"yesterday\",\"subject\":{{\"name\":\"张三\"}},\"data\":{{}}}}\n");
        let limits = doudi_model::ParseLimits::default();
        let refused = match validate(body.as_bytes(), Source::CivilRegistry, &limits) {
            Err(r) => r,
            Ok(_) => panic!("the second event must be refused"),
        };
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].starts_with("line 3: invalid_field: occurred_at"),
            "{}",
            refused[0]
        );
        assert!(!refused[0].contains("张三") && !refused[0].contains("yesterday"));
        let wrong = validate(good.as_bytes(), Source::Housing, &limits)
            .err()
            .unwrap_or_default();
        assert!(wrong[0].contains("source_mismatch"), "{wrong:?}");
    }
}
