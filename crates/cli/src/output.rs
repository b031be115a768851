//! Output helpers: progress bars on a terminal, plain progress lines in logs otherwise.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::lang::t;

/// A progress bar on a terminal; hidden (and replaced by periodic log lines) otherwise.
pub fn bar(total: u64, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(t(
            "{msg:24} [{bar:40}] {pos}/{len}（{per_sec}，剩余 {eta}）",
            "{msg:24} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Byte-based progress of a pipeline run: a bar on a terminal, a log line every 5 s otherwise.
pub struct RunProgress {
    bar: ProgressBar,
    terminal: bool,
    last_log: std::sync::Mutex<Instant>,
}

impl RunProgress {
    pub fn new() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(t(
                    "读取数据 [{bar:40}] {bytes}/{total_bytes}（{bytes_per_sec}，剩余 {eta}）{msg}",
                    "reading feeds [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        RunProgress {
            bar,
            terminal,
            last_log: std::sync::Mutex::new(Instant::now()),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl doudi_pipeline::Progress for RunProgress {
    fn start(&self, total_bytes: u64) {
        self.bar.set_length(total_bytes);
        self.bar.set_position(0);
    }

    fn advance(&self, bytes: u64, r: &doudi_pipeline::RunReport) {
        self.bar.inc(bytes);
        if self.terminal {
            let (received, opened) = (r.received, r.warnings_opened);
            self.bar.set_message(tr!(
                "{received} 条记录，新开启预警 {opened} 条",
                "{received} events, {opened} warnings opened"
            ));
        } else if let Ok(mut last) = self.last_log.lock() {
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                doudi_telemetry::info_counts!(r, "progress";
                    received, accepted, duplicates, dead_letters, warnings_opened);
            }
        }
    }
}

/// "cannot open FILE" / "无法打开文件 FILE".
pub fn cannot(zh: &str, en: &str, path: &Path) -> String {
    let p = path.display();
    tr!("无法{zh}文件 {p}", "cannot {en} {p}")
}

/// How many problems of a refused file are printed before the rest is only counted.
const SHOW_PROBLEMS: usize = 20;

/// Refuse an import file (the register, the officer directory, region names): says that nothing
/// of it was imported and how many problems it has, lists the first of them on stderr (each after
/// `FILE:`), and returns the exit code of a refusal (2).
pub fn nothing_imported(file: &Path, problems: &[String]) -> std::process::ExitCode {
    refused(file, problems, problems.len())
}

/// [`nothing_imported`] of a file with `total` problems, of which the first are `problems`.
pub fn refused(file: &Path, problems: &[String], total: usize) -> std::process::ExitCode {
    let (name, n) = (file.display(), total.max(problems.len()));
    crate::complain!(
        "{name} 有 {n} 处问题，未导入任何数据。请改正后重新导入：",
        "{name} has {n} problem(s); nothing was imported. Fix them and import again:"
    );
    print_problems(problems, n, SHOW_PROBLEMS, &format!("{name}:"));
    std::process::ExitCode::from(2)
}

/// The first `show` problems of a refused file with `total`, one a line on stderr (each after
/// `prefix`), and how many more.
pub fn print_problems(problems: &[String], total: usize, show: usize, prefix: &str) {
    for p in problems.iter().take(show) {
        eprintln!("  {prefix}{p}");
    }
    let shown = problems.len().min(show);
    if total > shown {
        let more = total - shown;
        eprintln!("{}", tr!("  ……另有 {more} 处", "  … and {more} more"));
    }
}

/// A JSON parse error of one line, with its column instead of serde's "at line 1 column N".
pub fn json_problem(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rsplit_once(" at line 1 column ") {
        Some((m, col)) => tr!("{m}（第 {col} 列）", "{m} (column {col})"),
        None => msg,
    }
}

/// A list for scripts (`json`: the items as pretty JSON, whatever the language) or for people:
/// `empty` when there is none, else `line` for each item.
pub fn print_list<T: serde::Serialize>(
    json: bool,
    items: &[T],
    empty: impl FnOnce() -> String,
    line: impl FnMut(&T),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        println!("{}", empty());
    } else {
        items.iter().for_each(line);
    }
    Ok(())
}

/// `text` and spaces up to `width` columns of a terminal (a Chinese character takes two), with
/// at least one space after it.
pub fn pad(text: &str, width: usize) -> String {
    let used: usize = text
        .chars()
        .map(|c| if c >= '\u{2e80}' { 2 } else { 1 })
        .sum();
    format!("{text}{}", " ".repeat(width.saturating_sub(used).max(1)))
}

/// A history line's tail: ` — note` (if any) and ` [已拒绝：why]` / ` [REFUSED: why]`.
pub fn note_and_refusal(note: Option<&str>, refused: Option<&str>) -> String {
    let note = note
        .filter(|n| !n.is_empty())
        .map(|n| format!(" — {n}"))
        .unwrap_or_default();
    let refused = refused
        .map(|r| tr!(" [已拒绝：{r}]", " [REFUSED: {r}]"))
        .unwrap_or_default();
    note + &refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_padded_by_terminal_columns() {
        assert_eq!(pad("database", 16), "database        ");
        assert_eq!(pad("events received", 16), "events received ");
        // A Chinese character takes two columns.
        assert_eq!(pad("数据库", 12), "数据库      ");
        assert_eq!(pad("未办结预警", 12), "未办结预警  ");
        assert_eq!(pad("too long for it", 4), "too long for it ");
    }

    #[test]
    fn a_history_tail_has_the_note_and_the_refusal() {
        // This crate's unit tests read English (see `lang::lang`).
        assert_eq!(note_and_refusal(Some(""), None), "");
        assert_eq!(
            note_and_refusal(Some("账单已报销"), Some("not the officer")),
            " — 账单已报销 [REFUSED: not the officer]"
        );
    }
}
