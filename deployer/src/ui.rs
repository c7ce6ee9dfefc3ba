//! Progress and output. The engine emits typed [`Event`]s; one [`Printer`] renders them on stderr
//! (a live line per resource on a TTY, plain timestamped lines otherwise, one JSON object per
//! line with `--output json`), shows those of the [`Level`]s `-v` / `-q` ask for, and owns
//! stdout: a command's result goes through [`Printer::out`], which first stops live rendering, so
//! progress and results never interleave and no command has to remember to stop the bars.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::events::{Event, Level, Outcome, millis};
use crate::ids::Name;

/// `movies-stack top`: its snapshot as a ratatui frame or text, and the terminal it owns.
pub mod top;

/// The format of the command's result (stdout) and of its progress (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Human,
    Json,
}

/// Renders events (stderr) and owns stdout.
pub trait Printer: Send + Sync {
    fn event(&self, event: Event);
    /// Print the command's result on stdout (after stopping any live rendering).
    fn out(&self, text: &str);
}

/// The printer of a command: `--output`, `-v` (`verbose`) and `-q` (`quiet`) decide it, here
/// only. Live lines on a terminal (human, not quiet, not CI); plain lines otherwise.
pub fn printer(output: Output, verbose: u8, quiet: bool) -> Arc<dyn Printer> {
    if output == Output::Human && !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        Arc::new(TtyPrinter::new())
    } else {
        plain_printer(output, verbose, quiet)
    }
}

/// Lines even on a terminal: for a long-running command (`serve`) whose own lines share stderr
/// with the progress.
pub fn plain_printer(output: Output, verbose: u8, quiet: bool) -> Arc<dyn Printer> {
    Arc::new(PlainPrinter::new(output, shown_from(verbose, quiet), Box::new(std::io::stderr())))
}

/// The least level shown: `-q` warnings, errors and notices; `-v` everything.
fn shown_from(verbose: u8, quiet: bool) -> Level {
    if quiet {
        Level::Notice
    } else if verbose > 0 {
        Level::Detail
    } else {
        Level::Progress
    }
}

/// The human text of an event (without the timestamp).
fn line(event: &Event) -> String {
    match event {
        Event::Phase(phase) => format!("phase: {phase:?}"),
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
        Event::Finished { id, outcome: Outcome::Failed(e) } => format!("{id}: FAILED: {e}"),
        Event::Finished { id, outcome } => format!("{id}: {}", outcome.summary()),
        Event::Warning(m) => format!("warning: {m}"),
        Event::Info(m) | Event::Notice(m) => m.clone(),
        // After the `^C` the terminal echoes.
        Event::Interrupted => "\nstopping: finishing the calls in flight (Ctrl-C again to abort at once)...".into(),
        Event::Cancelled => "down: cancelled, nothing was deleted".into(),
        Event::Serve(event) => event.to_string(),
        Event::Deploy { id, step } => format!("{id}: {step}"),
    }
}

/// Lines that carry no timestamp: `serve`'s (`serve: ...`, `[env N] ...`, read by scripts from
/// the start of the line) and the Ctrl-C and cancel notices.
fn untimed(event: &Event) -> bool {
    matches!(event, Event::Serve(_) | Event::Interrupted | Event::Cancelled)
}

/// An event as one JSON line: its fields, its `level`, and `at_ms`, the milliseconds since the
/// command started.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    event: &'a Event,
    level: Level,
    at_ms: u64,
}

/// One line per event shown: timestamped text (for logs, CI and pipes), or JSON.
pub struct PlainPrinter {
    start: Instant,
    output: Output,
    shown: Level,
    err: Mutex<Box<dyn Write + Send>>,
}

impl PlainPrinter {
    /// Writes to `err` the events of level `shown` and above.
    fn new(output: Output, shown: Level, err: Box<dyn Write + Send>) -> Self {
        PlainPrinter { start: Instant::now(), output, shown, err: Mutex::new(err) }
    }

    /// The text written for `event` (None: not shown), newline included.
    fn render(&self, event: &Event) -> Option<String> {
        if event.level() < self.shown {
            return None;
        }
        let elapsed = self.start.elapsed();
        Some(match self.output {
            Output::Json => {
                let json = serde_json::to_string(&JsonLine { event, level: event.level(), at_ms: millis(elapsed) })
                    .expect("events serialize to JSON");
                format!("{json}\n")
            }
            Output::Human if untimed(event) => format!("{}\n", line(event)),
            Output::Human => format!("[{:>7.1}s] {}\n", elapsed.as_secs_f32(), line(event)),
        })
    }
}

impl Printer for PlainPrinter {
    fn event(&self, event: Event) {
        if let Some(text) = self.render(&event) {
            let mut err = self.err.lock().unwrap_or_else(|p| p.into_inner());
            // Nowhere to say that stderr failed.
            let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
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
                let text = line(&event);
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
            Event::Deploy { step: crate::events::DeployStep::Watching { .. }, id } => {
                let text = line(&event);
                let message = text.strip_prefix(&format!("{id}: ")).unwrap_or(&text).to_string();
                self.bar(*id).set_message(message);
            }
            Event::Deploy { .. }
            | Event::SdkRetry { .. }
            | Event::Warning(_)
            | Event::Info(_)
            | Event::Notice(_)
            | Event::Interrupted
            | Event::Cancelled
            | Event::Serve(_) => {
                let _ = self.multi.println(line(&event));
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

/// The error that ends the command, last on stderr: `error: ...`, or with `--output json` one
/// JSON line like the events' (`"event":"error"`, its `message` and the `exit_code`).
pub fn print_error(output: Output, message: &str, exit_code: i32) {
    let _ = std::io::stderr().write_all(error_line(output, message, exit_code).as_bytes());
}

fn error_line(output: Output, message: &str, exit_code: i32) -> String {
    #[derive(serde::Serialize)]
    struct ErrorLine<'a> {
        event: &'static str,
        message: &'a str,
        exit_code: i32,
        level: Level,
    }
    match output {
        Output::Human => format!("error: {message}\n"),
        Output::Json => {
            let line = ErrorLine { event: "error", message, exit_code, level: Level::Error };
            format!("{}\n", serde_json::to_string(&line).expect("an error line serializes to JSON"))
        }
    }
}

/// `text` and a newline on stdout: [`write_stdout_bytes`].
pub fn write_stdout(text: &str) {
    write_stdout_bytes(format!("{text}\n").as_bytes());
}

/// Bytes on stdout. A reader that went away (`movies-stack graph | head`) ends the process
/// quietly with exit 0, as SIGPIPE would end a C tool, instead of `println!`'s panic; any other
/// write error ends it with exit 1, saying so.
pub fn write_stdout_bytes(bytes: &[u8]) {
    if let Err(e) = try_write_stdout_bytes(bytes) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Bytes on stdout, flushed; the error is the caller's to handle (a stream of results that
/// must not end the process, such as `serve`'s access log).
pub fn try_write_stdout_bytes(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::{Action, FieldChange, Phase, ServeEvent};

    /// What a [`PlainPrinter`] wrote.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Everything `events` print with `--output output`, `-v` / `-q` as given.
    fn printed(output: Output, verbose: u8, quiet: bool, events: Vec<Event>) -> String {
        let buffer = Buffer::default();
        let printer = PlainPrinter::new(output, shown_from(verbose, quiet), Box::new(buffer.clone()));
        for event in events {
            printer.event(event);
        }
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn id(name: &'static str) -> Name {
        crate::ids::Id::<()>::new(name).name()
    }

    /// One event of each kind, and the JSON tag each must have.
    fn every_kind() -> Vec<(Event, &'static str)> {
        let s = Duration::from_secs;
        vec![
            (Event::Phase(Phase::Applying), "phase"),
            (Event::Started { id: id("function"), action: Action::Creating("Lambda function") }, "started"),
            (Event::Progress { id: id("lock"), message: "waiting for the lock held by x (pid 1)".into() }, "progress"),
            (Event::Waiting { id: id("table"), what: "ACTIVE".into(), elapsed: s(3), deadline: s(600) }, "waiting"),
            (
                Event::Retrying {
                    id: id("function"),
                    what: "the role to be usable".into(),
                    code: "InvalidParameterValueException".into(),
                    delay: Duration::from_millis(2000),
                    elapsed: s(4),
                    deadline: s(300),
                },
                "retrying",
            ),
            (Event::SdkRetry { operation: "PutItem".into(), attempt: 2 }, "sdk_retry"),
            (
                Event::Finished {
                    id: id("stage"),
                    outcome: Outcome::Updated(vec![FieldChange::update("tracing", "true", "false")]),
                },
                "finished",
            ),
            (Event::Finished { id: id("role"), outcome: Outcome::Failed("AccessDenied".into()) }, "finished"),
            (Event::Warning("no CloudTrail trail".into()), "warning"),
            (Event::Info("up: 3 created".into()), "info"),
            (Event::Notice("About to delete 3 resources".into()), "notice"),
            (Event::Interrupted, "interrupted"),
            (Event::Cancelled, "cancelled"),
            (Event::Serve(ServeEvent::EnvReady { env: 1, init: Duration::from_millis(42) }), "serve_env_ready"),
            (
                Event::Serve(ServeEvent::FunctionOutput { env: 2, line: r#"{"level":"INFO"}"#.into() }),
                "serve_function_output",
            ),
            (
                Event::Serve(ServeEvent::Rules { rules: vec!["usage plan a".into(), "usage plan b".into()] }),
                "serve_rules",
            ),
            (Event::Serve(ServeEvent::Listening { url: "http://127.0.0.1:3000/prod/".into() }), "serve_listening"),
            (
                Event::Serve(ServeEvent::Rebuilt {
                    took: Duration::from_millis(1500),
                    bootstrap: "/tmp/movies-stack-serve-1/bootstrap-2".into(),
                }),
                "serve_rebuilt",
            ),
            (
                Event::Serve(ServeEvent::RebuildFailed {
                    error: "error: expected `;`\n --> handler/src/lib.rs:3:9".into(),
                }),
                "serve_rebuild_failed",
            ),
        ]
    }

    #[test]
    fn json_progress_is_one_object_per_line_with_a_stable_tag() {
        let kinds = every_kind();
        let tags: Vec<&str> = kinds.iter().map(|(_, tag)| *tag).collect();
        let text = printed(Output::Json, 1, false, kinds.into_iter().map(|(e, _)| e).collect());
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
            .collect();
        assert_eq!(lines.iter().map(|l| l["event"].as_str().unwrap()).collect::<Vec<_>>(), tags, "{text}");
        assert!(lines.iter().all(|l| l["at_ms"].is_u64() && l["level"].is_string()), "{text}");
        let started = &lines[1];
        assert_eq!(
            (&started["id"], &started["action"], &started["kind"], &started["level"]),
            (&"function".into(), &"creating".into(), &"Lambda function".into(), &"progress".into())
        );
        assert_eq!((&lines[3]["elapsed_ms"], &lines[3]["deadline_ms"]), (&3000.into(), &600_000.into()));
        assert_eq!(lines[4]["delay_ms"], 2000);
        // The fields that changed, not their values (the human line shows no more).
        assert_eq!(lines[6]["outcome"], "updated");
        assert_eq!(lines[6]["fields"], serde_json::json!(["tracing"]));
        assert!(lines[6].get("changes").is_none() && !text.contains("\"desired\""), "{text}");
        assert_eq!(
            (&lines[7]["outcome"], &lines[7]["error"], &lines[7]["level"]),
            (&"failed".into(), &"AccessDenied".into(), &"error".into())
        );
        assert_eq!(lines[13]["init_ms"], 42);
        assert_eq!((&lines[14]["env"], &lines[14]["line"]), (&2.into(), &r#"{"level":"INFO"}"#.into()));
        assert_eq!(lines[15]["rules"], serde_json::json!(["usage plan a", "usage plan b"]));
        assert_eq!(lines[16]["level"], "notice");
        assert_eq!((&lines[17]["took_ms"], &lines[17]["level"]), (&1500.into(), &"notice".into()));
        assert_eq!(
            (&lines[18]["error"], &lines[18]["level"]),
            (&"error: expected `;`\n --> handler/src/lib.rs:3:9".into(), &"warning".into())
        );
    }

    #[test]
    fn human_lines_are_unchanged() {
        let text = printed(Output::Human, 0, false, every_kind().into_iter().map(|(e, _)| e).collect());
        let lines: Vec<&str> = text.lines().collect();
        // Timestamped: `[    0.0s] function: creating Lambda function`.
        let timed: Vec<&str> =
            lines.iter().filter_map(|l| l.strip_prefix('[')?.split_once("s] ").map(|(_, rest)| rest)).collect();
        assert_eq!(
            timed,
            [
                "function: creating Lambda function",
                "lock: waiting for the lock held by x (pid 1)",
                "table: waiting for ACTIVE (3s of 600s)",
                "function: waiting for the role to be usable: InvalidParameterValueException; retry in 2s (4s of 300s)",
                "aws: retrying PutItem (attempt 2): throttled or a transient error",
                "stage: updated: tracing",
                "role: FAILED: AccessDenied",
                "warning: no CloudTrail trail",
                "up: 3 created",
                "About to delete 3 resources",
            ]
        );
        // serve's lines and the Ctrl-C and cancel notices, as they always were: no timestamp.
        let untimed: Vec<&str> =
            lines.iter().copied().filter(|l| !l.starts_with('[') || l.starts_with("[env ")).collect();
        assert_eq!(
            untimed,
            [
                "",
                "stopping: finishing the calls in flight (Ctrl-C again to abort at once)...",
                "down: cancelled, nothing was deleted",
                "serve: env 1 ready in 42 ms",
                r#"[env 2] {"level":"INFO"}"#,
                "serve: usage plan a",
                "serve: usage plan b",
                "serve: listening on http://127.0.0.1:3000/prod/ (Ctrl-C stops; SIGHUP re-reads the stack's keys and plans)",
                "serve: rebuilt in 1.5 s: new requests go to /tmp/movies-stack-serve-1/bootstrap-2; requests in flight \
                 finish on the previous build",
                "serve: rebuild failed, still serving the previous build:",
                "error: expected `;`",
                " --> handler/src/lib.rs:3:9",
            ]
        );
        assert!(!text.contains("phase:"), "phases only with -v:\n{text}");
        assert!(printed(Output::Human, 1, false, vec![Event::Phase(Phase::Applying)]).ends_with("] phase: Applying\n"));
    }

    #[test]
    fn quiet_shows_warnings_errors_and_notices_only() {
        let kinds = every_kind();
        let events = || kinds.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>();
        let json = printed(Output::Json, 0, true, events());
        let tags: Vec<String> = json
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            tags,
            [
                "finished",
                "warning",
                "notice",
                "interrupted",
                "cancelled",
                "serve_listening",
                "serve_rebuilt",
                "serve_rebuild_failed"
            ]
        );
        assert!(json.contains("\"outcome\":\"failed\""), "{json}");
        let human = printed(Output::Human, 0, true, events());
        assert_eq!(
            human.lines().count(),
            11,
            "the failure, the warning, the notice, the blank line and the stopping line, the cancel, listening, \
             rebuilt, the failed rebuild's 3 lines:\n{human}"
        );
        assert!(!human.contains("creating") && !human.contains("up: 3 created") && !human.contains("[env "), "{human}");
        assert!(
            human.contains("role: FAILED: AccessDenied") && human.contains("warning: no CloudTrail trail"),
            "{human}"
        );
        // The error that ends the run, even with -q.
        assert_eq!(error_line(Output::Human, "no stack", 1), "error: no stack\n");
        let error: serde_json::Value =
            serde_json::from_str(&error_line(Output::Json, "a \"quoted\"\nline", 4)).unwrap();
        assert_eq!(
            error,
            serde_json::json!({"event": "error", "message": "a \"quoted\"\nline", "exit_code": 4, "level": "error"})
        );
        // Unchanged resources are a detail (-v), like phases.
        let unchanged = || vec![Event::Finished { id: id("table"), outcome: Outcome::Unchanged }];
        assert_eq!(printed(Output::Json, 0, false, unchanged()), "");
        assert!(printed(Output::Json, 1, false, unchanged()).contains("\"outcome\":\"unchanged\""));
    }
}
