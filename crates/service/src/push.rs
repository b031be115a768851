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
//!   folder) or already stored in `events`, or repeated within the batch, is answered as a
//!   duplicate and not appended again.
//! - **Limits.** A body over `serve.push_max_bytes` is 413; a token over
//!   `serve.push_batches_per_minute` batches in the last minute is 429.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
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

/// `POST /api/feeds/{source}`: a batch of envelope lines from the source's feeder.
pub async fn push_feed(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(source): Path<String>,
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
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some(NDJSON) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the batch as `Content-Type: {NDJSON}`: one JSON envelope per line"
        )));
    }
    let lines = match validate(&body, source, &state.config().parse_limits) {
        Ok(lines) if lines.is_empty() => {
            return Err(ApiError::Unprocessable(
                "the batch holds no event: send one JSON envelope per line".into(),
            ))
        }
        Ok(lines) => lines,
        Err(refused) => {
            let n = refused.len();
            let more = n.saturating_sub(MAX_NAMED_LINES);
            let mut text = format!(
                "the batch is refused whole, nothing was stored: {n} line(s) refused: {}",
                refused[..n.min(MAX_NAMED_LINES)].join("; ")
            );
            if more > 0 {
                text.push_str(&format!("; and {more} more"));
            }
            return Err(ApiError::Unprocessable(text));
        }
    };

    let folder: PathBuf = state.config().feeds_dir.join(source.code());
    let lock = state.push().source_lock(source);
    let mut known = lock.lock().await;
    if known.is_none() {
        let f = folder.clone();
        let ids = tokio::task::spawn_blocking(move || pushed_ids(&f))
            .await
            .map_err(|e| internal("reading pushed ids", e))?
            .map_err(|e| internal("reading the feed folder", e))?;
        *known = Some(ids);
    }
    let known_ids = known.get_or_insert_with(HashSet::new);
    let asked: Vec<&str> = lines
        .iter()
        .map(|l| l.event_id.as_str())
        .filter(|id| !known_ids.contains(*id))
        .collect();
    let stored = state
        .store()
        .stored_event_ids(source.code(), &asked)
        .await?;
    let mut fresh: HashSet<&str> = HashSet::new();
    let mut data = Vec::with_capacity(body.len() + lines.len());
    let mut duplicate_lines = Vec::new();
    let mut new_ids = Vec::new();
    for l in &lines {
        let id = l.event_id.as_str();
        if known_ids.contains(id) || stored.contains(id) || !fresh.insert(id) {
            duplicate_lines.push(l.number);
            continue;
        }
        data.extend_from_slice(l.bytes);
        data.push(b'\n');
        new_ids.push(id.to_string());
    }
    let name = format!("push-{}.jsonl", chrono::Utc::now().format("%Y-%m-%d"));
    if !data.is_empty() {
        let (f, file) = (folder.clone(), folder.join(&name));
        tokio::task::spawn_blocking(move || append_durably(&f, &file, &data))
            .await
            .map_err(|e| internal("appending", e))?
            .map_err(|e| internal("appending to the feed file", e))?;
    }
    let accepted = new_ids.len();
    known_ids.extend(new_ids);
    drop(known);
    tracing::info!(
        source = source.code(),
        token = who.token_id,
        accepted,
        duplicates = duplicate_lines.len(),
        "push: batch stored"
    );
    Ok(Json(json!({
        "source": source.code(),
        "accepted": accepted,
        "duplicates": duplicate_lines.len(),
        "duplicate_lines": duplicate_lines,
        "file": if accepted > 0 { Some(format!("{}/{name}", source.code())) } else { None },
    }))
    .into_response())
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
