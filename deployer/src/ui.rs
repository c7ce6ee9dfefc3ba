//! Progress and output. The engine emits typed [`Event`]s; one [`Printer`] renders them (a live
//! line per resource on a TTY, plain timestamped lines otherwise) and owns stdout: a command's
//! result goes through [`Printer::out`], which first stops live rendering, so progress and results
//! never interleave and no command has to remember to stop the bars.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::events::{Event, Outcome};
use crate::ids::Name;

/// Renders events (stderr) and owns stdout.
pub trait Printer: Send + Sync {
    fn event(&self, event: Event);
    /// Print the command's result on stdout (after stopping any live rendering).
    fn out(&self, text: &str);
}

pub fn printer(verbose: u8) -> Arc<dyn Printer> {
    if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        Arc::new(TtyPrinter::new())
    } else {
        Arc::new(PlainPrinter { start: Instant::now(), verbose })
    }
}

/// Timestamped lines even on a terminal: for a long-running command (`serve`) whose own lines
/// share stderr with the progress.
pub fn plain_printer(verbose: u8) -> Arc<dyn Printer> {
    Arc::new(PlainPrinter { start: Instant::now(), verbose })
}

/// One line of text for an event, or None when it is only shown with `-v`.
fn line(event: &Event, verbose: u8) -> Option<String> {
    Some(match event {
        Event::Phase(phase) if verbose > 0 => format!("phase: {phase:?}"),
        Event::Phase(_) => return None,
        Event::Started { id, action } => format!("{id}: {action}"),
        Event::Progress { id, message } => format!("{id}: {message}"),
        Event::Waiting { id, what, elapsed, deadline } => {
            format!("{id}: waiting for {what} ({}s of {}s)", elapsed.as_secs(), deadline.as_secs())
        }
        Event::Retrying { id, what, code, delay, elapsed, deadline } => format!(
            "{id}: waiting for {what}: {code}; retry in {delay:.0?} ({}s of {}s)",
            elapsed.as_secs(),
            deadline.as_secs()
        ),
        Event::SdkRetry { operation, attempt } => {
            format!("aws: retrying {operation} (attempt {attempt}): throttled or a transient error")
        }
        Event::Finished { outcome: Outcome::Unchanged, .. } if verbose == 0 => return None,
        Event::Finished { id, outcome: Outcome::Failed(e) } => format!("{id}: FAILED: {e}"),
        Event::Finished { id, outcome } => format!("{id}: {}", outcome.summary()),
        Event::Warning(m) => format!("warning: {m}"),
        Event::Info(m) => m.clone(),
    })
}

/// Timestamped lines: for logs, CI and pipes.
pub struct PlainPrinter {
    start: Instant,
    verbose: u8,
}

impl Printer for PlainPrinter {
    fn event(&self, event: Event) {
        if let Some(line) = line(&event, self.verbose) {
            eprintln!("[{:>7.1}s] {line}", self.start.elapsed().as_secs_f32());
        }
    }

    fn out(&self, text: &str) {
        write_stdout(text);
    }
}

/// A live line per resource.
pub struct TtyPrinter {
    multi: MultiProgress,
    bars: Mutex<HashMap<Name, ProgressBar>>,
}

impl TtyPrinter {
    fn new() -> Self {
        TtyPrinter { multi: MultiProgress::new(), bars: Mutex::new(HashMap::new()) }
    }

    fn bar(&self, id: Name) -> ProgressBar {
        let mut bars = self.bars.lock().expect("bars lock");
        bars.entry(id)
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

impl Printer for TtyPrinter {
    fn event(&self, event: Event) {
        match &event {
            Event::Phase(_) => {}
            Event::Started { id, .. }
            | Event::Progress { id, .. }
            | Event::Waiting { id, .. }
            | Event::Retrying { id, .. } => {
                let text = line(&event, 1).unwrap_or_default();
                let message = text.strip_prefix(&format!("{id}: ")).unwrap_or(&text).to_string();
                self.bar(*id).set_message(message);
            }
            Event::Finished { id, outcome } => {
                let bar = self.bar(*id);
                let (template, message) = match outcome {
                    Outcome::Failed(e) => ("✗ {prefix:<22.bold.red} {wide_msg}", e.clone()),
                    other => ("  {prefix:<22.bold} {wide_msg}", other.summary()),
                };
                bar.set_style(ProgressStyle::with_template(template).expect("template"));
                bar.finish_with_message(message);
            }
            Event::SdkRetry { .. } | Event::Warning(_) | Event::Info(_) => {
                let _ = self.multi.println(line(&event, 1).unwrap_or_default());
            }
        }
    }

    fn out(&self, text: &str) {
        for bar in self.bars.lock().expect("bars lock").values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
        write_stdout(text);
    }
}

/// A printer that records events and output (tests).
#[cfg(test)]
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
    pub out: Mutex<Vec<String>>,
}

#[cfg(test)]
impl Printer for Recorder {
    fn event(&self, event: Event) {
        self.events.lock().expect("recorder lock").push(event);
    }

    fn out(&self, text: &str) {
        self.out.lock().expect("recorder lock").push(text.to_string());
    }
}

/// A title and one line per output.
pub fn outputs_text(title: &str, outs: &BTreeMap<&'static str, String>) -> String {
    let mut text = title.to_string();
    for (k, v) in outs {
        text.push_str(&format!("\n  {k:<18} {v}"));
    }
    text
}

/// `text` and a newline on stdout: [`write_stdout_bytes`].
pub fn write_stdout(text: &str) {
    write_stdout_bytes(format!("{text}\n").as_bytes());
}

/// Bytes on stdout. A reader that went away (`movies-stack graph | head`) ends the process
/// quietly with exit 0, as SIGPIPE would end a C tool, instead of `println!`'s panic; any other
/// write error ends it with exit 1, saying so.
pub fn write_stdout_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}
