//! Output helpers: progress bars on a terminal, plain progress lines in logs otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal; hidden (and replaced by periodic log lines) otherwise.
pub fn bar(total: u64, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:24} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
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
                ProgressStyle::with_template(
                    "reading feeds [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}",
                )
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
            self.bar.set_message(format!(
                "{} events, {} warnings opened",
                r.received, r.warnings_opened
            ));
        } else if let Ok(mut last) = self.last_log.lock() {
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                tracing::info!(
                    received = r.received,
                    accepted = r.accepted,
                    duplicates = r.duplicates,
                    dead_letters = r.dead_letters,
                    warnings_opened = r.warnings_opened,
                    "progress"
                );
            }
        }
    }
}
