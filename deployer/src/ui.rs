//! Progress and output. The engine emits [`Event`]s; a reporter renders them: a live line per
//! resource on a TTY (indicatif), plain timestamped lines otherwise. Everything goes to stderr;
//! stdout is only for the command's result (outputs, JSON).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Debug, Clone)]
pub enum Event {
    /// Work on a resource started; `action` is "observing", "creating", "updating", ...
    Started {
        id: String,
        action: String,
    },
    Progress {
        id: String,
        message: String,
    },
    /// Finished; `summary` is "created", "no changes", "updated: retention_days", ...
    Finished {
        id: String,
        summary: String,
    },
    Failed {
        id: String,
        error: String,
    },
    Warning(String),
    Info(String),
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: Event);
    /// Stop live rendering (before printing results).
    fn finish(&self) {}
}

pub fn reporter(verbose: u8) -> std::sync::Arc<dyn Reporter> {
    if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        std::sync::Arc::new(TtyReporter::new())
    } else {
        std::sync::Arc::new(PlainReporter { start: Instant::now(), verbose })
    }
}

/// Timestamped lines even on a terminal: for a long-running command (`serve`) whose own lines
/// share stderr with the progress.
pub fn plain_reporter(verbose: u8) -> std::sync::Arc<dyn Reporter> {
    std::sync::Arc::new(PlainReporter { start: Instant::now(), verbose })
}

/// Timestamped lines: for logs, CI and pipes.
pub struct PlainReporter {
    start: Instant,
    verbose: u8,
}

impl Reporter for PlainReporter {
    fn event(&self, event: Event) {
        let t = self.start.elapsed().as_secs_f32();
        let line = match event {
            Event::Started { id, action } => {
                if self.verbose == 0 && action == "observing" {
                    return;
                }
                format!("{id}: {action}")
            }
            Event::Progress { id, message } => format!("{id}: {message}"),
            Event::Finished { id, summary } => {
                if self.verbose == 0 && summary == "no changes" {
                    return;
                }
                format!("{id}: {summary}")
            }
            Event::Failed { id, error } => format!("{id}: FAILED: {error}"),
            Event::Warning(m) => format!("warning: {m}"),
            Event::Info(m) => m,
        };
        eprintln!("[{t:>7.1}s] {line}");
    }
}

/// A live line per resource.
pub struct TtyReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl TtyReporter {
    fn new() -> Self {
        TtyReporter { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) }
    }

    fn bar(&self, id: &str) -> ProgressBar {
        let mut bars = self.bars.lock().expect("bars lock");
        bars.entry(id.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {prefix:<22.bold} {wide_msg} {elapsed:>4}")
                        .expect("template"),
                );
                bar.set_prefix(id.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .clone()
    }
}

impl Reporter for TtyReporter {
    fn event(&self, event: Event) {
        match event {
            Event::Started { id, action } => self.bar(&id).set_message(action),
            Event::Progress { id, message } => self.bar(&id).set_message(message),
            Event::Finished { id, summary } => {
                let bar = self.bar(&id);
                bar.set_style(ProgressStyle::with_template("  {prefix:<22.bold} {wide_msg}").expect("template"));
                bar.finish_with_message(summary);
            }
            Event::Failed { id, error } => {
                let bar = self.bar(&id);
                bar.set_style(ProgressStyle::with_template("✗ {prefix:<22.bold.red} {wide_msg}").expect("template"));
                bar.finish_with_message(error);
            }
            Event::Warning(m) => {
                let _ = self.multi.println(format!("warning: {m}"));
            }
            Event::Info(m) => {
                let _ = self.multi.println(m);
            }
        }
    }

    fn finish(&self) {
        for bar in self.bars.lock().expect("bars lock").values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
    }
}

/// A reporter that records events (tests).
#[cfg(test)]
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

#[cfg(test)]
impl Reporter for Recorder {
    fn event(&self, event: Event) {
        self.0.lock().expect("recorder lock").push(event);
    }
}
