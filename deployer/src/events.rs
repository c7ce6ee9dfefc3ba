//! What the engine tells the printer, typed: phases, work started on a resource, its progress,
//! waits and retries, and what became of it; and what `serve` tells ([`ServeEvent`]). Each has a
//! [`Level`] (what `-v` and `-q` show) and a JSON form (`--output json`). Below everything that
//! emits or prints them.

use std::fmt;
use std::time::Duration;

use crate::ids::Name;

/// What the engine is doing as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The sweep that finds what the stack owns (and the lock, and who we are).
    Discovering,
    Applying,
    Destroying,
}

/// What is being done to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Creating(&'static str),
    /// The fields that change.
    Updating(Vec<String>),
    Deleting(&'static str),
    /// Waiting for it to be ready (a function `Active`).
    Readying,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Creating(kind) => write!(f, "creating {kind}"),
            Action::Updating(fields) => write!(f, "updating {}", fields.join(", ")),
            Action::Deleting(kind) => write!(f, "deleting {kind}"),
            Action::Readying => f.write_str("waiting until ready"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    Phase(Phase),
    /// Work on a resource started.
    Started {
        id: Name,
        action: Action,
    },
    /// A step of that work, in the resource's words ("uploading code ...").
    Progress {
        id: Name,
        message: String,
    },
    /// A named wait polls: `what` is not yet true.
    Waiting {
        id: Name,
        what: String,
        elapsed: Duration,
        deadline: Duration,
    },
    /// A call failed with an error that clears by itself (throttling, propagation, conflict):
    /// retried after `delay`.
    Retrying {
        id: Name,
        what: String,
        code: String,
        delay: Duration,
        elapsed: Duration,
        deadline: Duration,
    },
    /// The SDK retries a call by itself (throttling, 5xx).
    SdkRetry {
        operation: String,
        attempt: u32,
    },
    /// Done with a resource.
    Finished {
        id: Name,
        outcome: Outcome,
    },
    Warning(String),
    Info(String),
    /// Shown even with `-q`: what the user must read to answer the command (`down`'s
    /// confirmation).
    Notice(String),
    /// The first Ctrl-C (or SIGTERM) of `up` or `down`: the calls in flight finish, nothing new
    /// starts.
    Interrupted,
    /// `down`: the confirmation did not match the stack's name; nothing was deleted.
    Cancelled,
    /// A line of `serve`.
    Serve(ServeEvent),
    /// A step of a deployment to the alias `live` (published, shifted, promoted, rolled back).
    Deploy {
        id: Name,
        step: DeployStep,
    },
}

/// A step of moving the alias `live` to a new version (`resources/function_alias.rs`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum DeployStep {
    /// PublishVersion made `version` from `$LATEST`.
    Published { version: u64, code_sha256: String },
    /// The pre-traffic invocation of the new version.
    PreTraffic { version: u64, passed: bool },
    /// The alias sends `percent` of the traffic to `version`.
    Shifted { version: u64, percent: u32 },
    /// The canary is watched: `remaining_seconds` of this step left.
    Watching { version: u64, percent: u32, remaining_seconds: u64 },
    /// All the traffic goes to `version` (`from` is empty on the first deploy).
    Promoted { version: u64, from: String },
    /// Back to `to`, all of the traffic, for `reason`.
    RolledBack { version: u64, to: String, reason: String },
}

impl fmt::Display for DeployStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployStep::Published { version, code_sha256 } => {
                write!(f, "published version {version} (code {code_sha256})")
            }
            DeployStep::PreTraffic { version, passed: true } => {
                write!(f, "version {version} passed its pre-traffic check")
            }
            DeployStep::PreTraffic { version, passed: false } => {
                write!(f, "version {version} failed its pre-traffic check")
            }
            DeployStep::Shifted { version, percent } => {
                write!(f, "canary: {percent}% of the traffic to version {version}")
            }
            DeployStep::Watching { version, percent, remaining_seconds } => write!(
                f,
                "canary: version {version} at {percent}%, {}m {:02}s left",
                remaining_seconds / 60,
                remaining_seconds % 60
            ),
            DeployStep::Promoted { version, from } if from.is_empty() => write!(f, "version {version} is live"),
            DeployStep::Promoted { version, from } => write!(f, "version {version} is live (was {from})"),
            DeployStep::RolledBack { version, to, reason } => {
                write!(f, "ROLLED BACK version {version}: {reason}; version {to} takes all the traffic")
            }
        }
    }
}

/// What happened to one resource.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created,
    Updated(Vec<FieldChange>),
    Unchanged,
    Failed(String),
    /// Not attempted: a dependency failed, or the run was interrupted before it started.
    Skipped(String),
    /// Started, then stopped by Ctrl-C in a wait (calls in flight finished): the next run
    /// finishes it.
    Stopped(String),
    /// `down`: deleted (true), or it was already gone (false).
    Deleted(bool),
    /// `down`: left in place on purpose (the table without `--delete-data`).
    Kept,
}

impl Outcome {
    pub fn is_change(&self) -> bool {
        matches!(self, Outcome::Created | Outcome::Updated(_) | Outcome::Deleted(true))
    }

    pub fn summary(&self) -> String {
        match self {
            Outcome::Created => "created".into(),
            Outcome::Updated(changes) => {
                let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                format!("updated: {}", fields.join(", "))
            }
            Outcome::Unchanged => "no changes".into(),
            Outcome::Failed(e) => format!("failed: {e}"),
            Outcome::Skipped(why) => format!("skipped: {why}"),
            Outcome::Stopped(why) => format!("stopped: {why}"),
            Outcome::Deleted(true) => "deleted".into(),
            Outcome::Deleted(false) => "already gone".into(),
            Outcome::Kept => "kept".into(),
        }
    }
}

/// One field that differs between the desired and the live resource, as people read it
/// (`plan`, `status`, progress lines, JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldChange {
    pub field: String,
    pub desired: String,
    pub live: String,
    /// The field cannot be changed in place: the resource must be replaced.
    pub replace: bool,
}

impl FieldChange {
    pub fn update(field: impl Into<String>, desired: impl ToString, live: impl ToString) -> Self {
        FieldChange { field: field.into(), desired: desired.to_string(), live: live.to_string(), replace: false }
    }

    pub fn replace(field: impl Into<String>, desired: impl ToString, live: impl ToString) -> Self {
        FieldChange { field: field.into(), desired: desired.to_string(), live: live.to_string(), replace: true }
    }
}

/// How much an event matters. `-v` shows every level, the default all but [`Level::Detail`],
/// `-q` only [`Level::Notice`] and above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Only with `-v`: phases, a resource found unchanged.
    Detail,
    /// Work under way: starts, steps, waits, retries, what became of a resource.
    Progress,
    /// A fact worth a line: a summary, an environment started, a request refused by the rules.
    Info,
    /// What the user must read to answer or use the command (`down`'s confirmation, the address
    /// `serve` listens on): shown even with `-q`.
    Notice,
    Warning,
    Error,
}

impl Event {
    pub fn level(&self) -> Level {
        match self {
            Event::Phase(_) | Event::Finished { outcome: Outcome::Unchanged, .. } => Level::Detail,
            Event::Finished { outcome: Outcome::Failed(_), .. } => Level::Error,
            Event::Started { .. }
            | Event::Progress { .. }
            | Event::Waiting { .. }
            | Event::Retrying { .. }
            | Event::SdkRetry { .. }
            | Event::Finished { .. } => Level::Progress,
            Event::Info(_) => Level::Info,
            Event::Notice(_) => Level::Notice,
            Event::Warning(_) | Event::Interrupted | Event::Cancelled => Level::Warning,
            Event::Serve(event) => event.level(),
            Event::Deploy { step: DeployStep::RolledBack { .. }, .. } => Level::Warning,
            Event::Deploy { step: DeployStep::Promoted { .. }, .. } => Level::Info,
            Event::Deploy { .. } => Level::Progress,
        }
    }
}

/// The JSON form of an event (`--output json`): an object whose `"event"` names the variant
/// (`"started"`, `"finished"`, `"serve_env_ready"`, ...), with the resource's `id`, and
/// durations in milliseconds (`elapsed_ms`). The tags and field names are stable: scripts read
/// them.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Event::Serve(event) => return event.serialize(serializer),
            Event::Deploy { id, step } => Wire::Deploy { id: id.to_string(), step },
            Event::Phase(phase) => Wire::Phase { phase: *phase },
            Event::Started { id, action } => Wire::Started { id: id.to_string(), action: action.into() },
            Event::Progress { id, message } => Wire::Progress { id: id.to_string(), message },
            Event::Waiting { id, what, elapsed, deadline } => {
                Wire::Waiting { id: id.to_string(), what, elapsed_ms: millis(*elapsed), deadline_ms: millis(*deadline) }
            }
            Event::Retrying { id, what, code, delay, elapsed, deadline } => Wire::Retrying {
                id: id.to_string(),
                what,
                code,
                delay_ms: millis(*delay),
                elapsed_ms: millis(*elapsed),
                deadline_ms: millis(*deadline),
            },
            Event::SdkRetry { operation, attempt } => Wire::SdkRetry { operation, attempt: *attempt },
            Event::Finished { id, outcome } => Wire::Finished { id: id.to_string(), outcome: outcome.into() },
            Event::Warning(message) => Wire::Warning { message },
            Event::Info(message) => Wire::Info { message },
            Event::Notice(message) => Wire::Notice { message },
            Event::Interrupted => Wire::Interrupted,
            Event::Cancelled => Wire::Cancelled,
        };
        wire.serialize(serializer)
    }
}

/// [`Event`] as it is written in JSON.
#[derive(serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Wire<'a> {
    Phase {
        phase: Phase,
    },
    Started {
        id: String,
        #[serde(flatten)]
        action: ActionWire<'a>,
    },
    Progress {
        id: String,
        message: &'a str,
    },
    Waiting {
        id: String,
        what: &'a str,
        elapsed_ms: u64,
        deadline_ms: u64,
    },
    Retrying {
        id: String,
        what: &'a str,
        code: &'a str,
        delay_ms: u64,
        elapsed_ms: u64,
        deadline_ms: u64,
    },
    SdkRetry {
        operation: &'a str,
        attempt: u32,
    },
    Finished {
        id: String,
        #[serde(flatten)]
        outcome: OutcomeWire<'a>,
    },
    Warning {
        message: &'a str,
    },
    Info {
        message: &'a str,
    },
    Notice {
        message: &'a str,
    },
    Interrupted,
    Cancelled,
    Deploy {
        id: String,
        #[serde(flatten)]
        step: &'a DeployStep,
    },
}

#[derive(serde::Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum ActionWire<'a> {
    Creating { kind: &'static str },
    Updating { fields: &'a [String] },
    Deleting { kind: &'static str },
    Readying,
}

impl<'a> From<&'a Action> for ActionWire<'a> {
    fn from(action: &'a Action) -> Self {
        match action {
            Action::Creating(kind) => ActionWire::Creating { kind },
            Action::Updating(fields) => ActionWire::Updating { fields },
            Action::Deleting(kind) => ActionWire::Deleting { kind },
            Action::Readying => ActionWire::Readying,
        }
    }
}

/// An outcome in JSON: the fields that changed, never their values (the human line shows no
/// more).
#[derive(serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum OutcomeWire<'a> {
    Created,
    Updated { fields: Vec<&'a str> },
    Unchanged,
    Failed { error: &'a str },
    Skipped { reason: &'a str },
    Stopped { reason: &'a str },
    Deleted,
    AlreadyGone,
    Kept,
}

impl<'a> From<&'a Outcome> for OutcomeWire<'a> {
    fn from(outcome: &'a Outcome) -> Self {
        match outcome {
            Outcome::Created => OutcomeWire::Created,
            Outcome::Updated(changes) => {
                OutcomeWire::Updated { fields: changes.iter().map(|c| c.field.as_str()).collect() }
            }
            Outcome::Unchanged => OutcomeWire::Unchanged,
            Outcome::Failed(error) => OutcomeWire::Failed { error },
            Outcome::Skipped(reason) => OutcomeWire::Skipped { reason },
            Outcome::Stopped(reason) => OutcomeWire::Stopped { reason },
            Outcome::Deleted(true) => OutcomeWire::Deleted,
            Outcome::Deleted(false) => OutcomeWire::AlreadyGone,
            Outcome::Kept => OutcomeWire::Kept,
        }
    }
}

/// A duration as whole milliseconds: the JSON fields named `..._ms`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// [`millis`] for `#[serde(serialize_with)]`.
fn ms<S: serde::Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(millis(*d))
}

/// What `serve` tells: its stack and limits, its execution environments, the requests the
/// gateway refused or could not answer, the function's own output. The human text of each
/// ([`Display`](std::fmt::Display)) is the line `serve` has always written (`serve: ...`, the
/// function's `[env N] ...`); the JSON tag of each starts with `serve_`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event")]
pub enum ServeEvent {
    /// The stack and stage served.
    #[serde(rename = "serve_stack")]
    Stack { stack: String, api_id: String, stage: String, invoke_url: String },
    /// The usage plans and keys enforced, one line each (at start and after a reload).
    #[serde(rename = "serve_rules")]
    Rules { rules: Vec<String> },
    /// The function as it is run.
    #[serde(rename = "serve_function")]
    Function {
        name: String,
        bootstrap: String,
        memory_mb: i32,
        #[serde(rename = "timeout_ms", serialize_with = "ms")]
        timeout: Duration,
        table: String,
        environments: u16,
        #[serde(rename = "integration_timeout_ms", serialize_with = "ms")]
        integration_timeout: Duration,
    },
    /// The bounds this process keeps to.
    #[serde(rename = "serve_limits")]
    Limits {
        connections: usize,
        #[serde(rename = "header_read_ms", serialize_with = "ms")]
        header_read: Duration,
        queue: usize,
        body_bytes: usize,
    },
    /// `cargo build --profile PROFILE -p handler --bin bootstrap`, before serving.
    #[serde(rename = "serve_building_handler")]
    BuildingHandler { profile: String },
    /// `--watch`: these paths (relative to the repository) are watched.
    #[serde(rename = "serve_watching")]
    Watching { paths: Vec<String> },
    /// `--watch`: a watched file changed; the handler is being rebuilt (`changed`: relative
    /// paths, at most a few).
    #[serde(rename = "serve_rebuilding")]
    Rebuilding { changed: Vec<String>, profile: String },
    /// The rebuild succeeded: new requests go to environments running `bootstrap`; requests
    /// in flight finish on the previous build.
    #[serde(rename = "serve_rebuilt")]
    Rebuilt {
        #[serde(rename = "took_ms", serialize_with = "ms")]
        took: Duration,
        bootstrap: String,
    },
    /// The rebuild failed (`error`: the compiler's errors): the previous build keeps serving.
    #[serde(rename = "serve_rebuild_failed")]
    RebuildFailed { error: String },
    /// `--watch`: the file watch reported an error (a change may have been missed).
    #[serde(rename = "serve_watch_failed")]
    WatchFailed { error: String },
    /// The previous build's environments were stopped once its requests in flight were answered.
    #[serde(rename = "serve_previous_build_stopped")]
    PreviousBuildStopped { bootstrap: String },
    #[serde(rename = "serve_listening")]
    Listening { url: String },
    #[serde(rename = "serve_stopping")]
    Stopping,
    #[serde(rename = "serve_stopped")]
    Stopped,
    /// SIGHUP: the stack is read again.
    #[serde(rename = "serve_reloading")]
    Reloading,
    #[serde(rename = "serve_reloaded")]
    Reloaded,
    #[serde(rename = "serve_reload_failed")]
    ReloadFailed { error: String },
    #[serde(rename = "serve_env_could_not_start")]
    EnvCouldNotStart { env: u32, error: String },
    #[serde(rename = "serve_env_started")]
    EnvStarted { env: u32, pid: u32 },
    /// It asked for its first event: its initialisation took `init`.
    #[serde(rename = "serve_env_ready")]
    EnvReady {
        env: u32,
        #[serde(rename = "init_ms", serialize_with = "ms")]
        init: Duration,
    },
    /// `POST /runtime/init/error`.
    #[serde(rename = "serve_env_init_error")]
    EnvInitError { env: u32, error: String },
    /// It ended before asking for an event.
    #[serde(rename = "serve_env_init_failed")]
    EnvInitFailed { env: u32, init_error: Option<String>, status: String },
    /// It ended while handling an event.
    #[serde(rename = "serve_env_crashed")]
    EnvCrashed { env: u32, status: String, request_id: String },
    #[serde(rename = "serve_env_exited")]
    EnvExited { env: u32, status: String },
    #[serde(rename = "serve_task_timed_out")]
    TaskTimedOut {
        env: u32,
        request_id: String,
        #[serde(rename = "after_ms", serialize_with = "ms")]
        after: Duration,
    },
    /// A line the function's process wrote (stdout or stderr), as it wrote it.
    #[serde(rename = "serve_function_output")]
    FunctionOutput { env: u32, line: String },
    /// 429: the key's usage plan throttles.
    #[serde(rename = "serve_throttled")]
    Throttled { request_id: String, usage_plan: String },
    /// 429: the key's quota is used up.
    #[serde(rename = "serve_quota_exhausted")]
    QuotaExhausted { request_id: String, usage_plan: String, limit: u64, period: String },
    /// 503: too many events wait for an environment already.
    #[serde(rename = "serve_saturated")]
    Saturated { request_id: String, waiting: usize },
    /// 504: no answer within the integration timeout; `function_ran`: an environment had taken
    /// the event.
    #[serde(rename = "serve_integration_timeout")]
    IntegrationTimeout {
        request_id: String,
        #[serde(rename = "timeout_ms", serialize_with = "ms")]
        timeout: Duration,
        function_ran: bool,
    },
    /// 502: the invoke failed.
    #[serde(rename = "serve_invocation_failed")]
    InvocationFailed { request_id: String, error: String },
    /// 502: the function answered something that is not a proxy response.
    #[serde(rename = "serve_malformed_response")]
    MalformedResponse { request_id: String, error: String },
    #[serde(rename = "serve_accept_failed")]
    AcceptFailed {
        error: String,
        #[serde(rename = "retry_in_ms", serialize_with = "ms")]
        retry_in: Duration,
    },
    /// Connections over the cap were answered 503 and closed (one event a second at most).
    #[serde(rename = "serve_connections_refused")]
    ConnectionsRefused { refused: usize, open: usize },
    #[serde(rename = "serve_access_log_failed")]
    AccessLogFailed { error: String },
    /// Where `serve` answers `GET /traces` and `GET /stats` (`traces --local`, `top --local`),
    /// the X-Ray daemon address its function processes send segments to, and the discovery file
    /// that tells the readers (None: it could not be written, see `discovery_error`).
    #[serde(rename = "serve_admin")]
    Admin { url: String, xray_daemon: String, discovery: Option<String>, discovery_error: Option<String> },
    /// Datagrams the X-Ray daemon dropped since the last such event (`total`: since start), and
    /// why the last one was.
    #[serde(rename = "serve_xray_dropped")]
    XRayDropped { dropped: usize, total: usize, reason: String },
}

impl ServeEvent {
    pub fn level(&self) -> Level {
        use ServeEvent::*;
        match self {
            Listening { .. } | Rebuilt { .. } => Level::Notice,
            ReloadFailed { .. }
            | RebuildFailed { .. }
            | WatchFailed { .. }
            | EnvCouldNotStart { .. }
            | EnvInitError { .. }
            | EnvInitFailed { .. }
            | EnvCrashed { .. }
            | TaskTimedOut { .. }
            | Saturated { .. }
            | IntegrationTimeout { .. }
            | InvocationFailed { .. }
            | MalformedResponse { .. }
            | AcceptFailed { .. }
            | ConnectionsRefused { .. }
            | AccessLogFailed { .. }
            | XRayDropped { .. } => Level::Warning,
            Stack { .. }
            | Rules { .. }
            | Function { .. }
            | Limits { .. }
            | BuildingHandler { .. }
            | Watching { .. }
            | Rebuilding { .. }
            | PreviousBuildStopped { .. }
            | Stopping
            | Stopped
            | Reloading
            | Reloaded
            | EnvStarted { .. }
            | EnvReady { .. }
            | EnvExited { .. }
            | FunctionOutput { .. }
            | Throttled { .. }
            | QuotaExhausted { .. }
            | Admin { .. } => Level::Info,
        }
    }
}

/// Why an environment's first event failed: it ended before asking for one (`init_error`: what
/// it reported to `/runtime/init/error`).
pub fn init_failure(env: u32, init_error: Option<&str>, status: &str) -> String {
    let reported = init_error.map(|e| format!("init error {e}, ")).unwrap_or_default();
    format!("env {env} failed to initialise ({reported}{status}) before asking for an event")
}

impl std::fmt::Display for ServeEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ServeEvent::*;
        match self {
            FunctionOutput { env, line } => return write!(f, "[env {env}] {line}"),
            Rules { rules } => {
                let lines: Vec<String> = rules.iter().map(|r| format!("serve: {r}")).collect();
                return f.write_str(&lines.join("\n"));
            }
            _ => f.write_str("serve: ")?,
        }
        match self {
            Stack { stack, api_id, stage, invoke_url } => {
                write!(f, "stack {stack}: REST API {api_id} stage {stage} ({invoke_url})")
            }
            Function { name, bootstrap, memory_mb, timeout, table, environments, integration_timeout } => write!(
                f,
                "function {name} ({bootstrap}): {memory_mb} MB, timeout {} s, table {table}, up to {environments} \
                 environment(s); integration timeout {} s",
                timeout.as_secs(),
                integration_timeout.as_secs()
            ),
            Limits { connections, header_read, queue, body_bytes } => write!(
                f,
                "limits: {connections} connections, request head within {} s (also the keep-alive idle timeout), \
                 {queue} events waiting for an environment, bodies up to {} MB",
                header_read.as_secs(),
                body_bytes / (1024 * 1024)
            ),
            BuildingHandler { profile } => write!(
                f,
                "building the handler for this machine: cargo build --profile {profile} -p handler --bin bootstrap"
            ),
            Watching { paths } => write!(
                f,
                "watching {}: a change rebuilds the handler and new requests go to the new build",
                paths.join(", ")
            ),
            Rebuilding { changed, profile } => write!(
                f,
                "{} changed: rebuilding the handler (cargo build --profile {profile} -p handler --bin bootstrap)",
                changed.join(", ")
            ),
            Rebuilt { took, bootstrap } => write!(
                f,
                "rebuilt in {:.1} s: new requests go to {bootstrap}; requests in flight finish on the previous build",
                took.as_secs_f64()
            ),
            RebuildFailed { error } => write!(f, "rebuild failed, still serving the previous build:\n{error}"),
            WatchFailed { error } => write!(f, "watching the handler's sources: {error} (a change may be missed)"),
            PreviousBuildStopped { bootstrap } => {
                write!(f, "previous build stopped ({bootstrap}): its requests in flight were answered")
            }
            Listening { url } => {
                write!(f, "listening on {url} (Ctrl-C stops; SIGHUP re-reads the stack's keys and plans)")
            }
            Stopping => f.write_str("stopping: answering the requests in flight (Ctrl-C again to stop at once)"),
            Stopped => f.write_str("stopped"),
            Reloading => f.write_str("SIGHUP: re-reading the stack"),
            Reloaded => f.write_str("rules reloaded"),
            ReloadFailed { error } => write!(f, "reload failed, still serving the previous rules: {error}"),
            EnvCouldNotStart { env, error } => write!(f, "env {env} could not start: {error}"),
            EnvStarted { env, pid } => write!(f, "env {env} started (pid {pid})"),
            EnvReady { env, init } => write!(f, "env {env} ready in {} ms", init.as_millis()),
            EnvInitError { env, error } => write!(f, "env {env}: init error {error}"),
            EnvInitFailed { env, init_error, status } => {
                f.write_str(&init_failure(*env, init_error.as_deref(), status))
            }
            EnvCrashed { env, status, request_id } => {
                write!(f, "env {env} exited ({status}) during invocation {request_id}")
            }
            EnvExited { env, status } => write!(f, "env {env} exited ({status})"),
            TaskTimedOut { env, request_id, after } => write!(
                f,
                "env {env}: {request_id} Task timed out after {:.2} seconds; stopping the environment",
                after.as_secs_f64()
            ),
            // The execution log lines API Gateway writes for these (knowledge-center article
            // api-gateway-429-limit), without the key.
            Throttled { request_id, usage_plan } => {
                write!(f, "{request_id} Key throttle limit exceeded for Usage Plan ID {usage_plan}")
            }
            QuotaExhausted { request_id, usage_plan, limit, period } => write!(
                f,
                "{request_id} Key quota exhausted for Usage Plan ID {usage_plan}. Limit: {limit} Period: {period}"
            ),
            Saturated { request_id, waiting } => {
                write!(f, "{request_id} {waiting} events already wait for an environment: 503")
            }
            IntegrationTimeout { request_id, timeout, function_ran } => write!(
                f,
                "{request_id} Execution failed due to a timeout error: no answer within {} s (--integration-timeout); {}",
                timeout.as_secs(),
                if *function_ran {
                    "the function was running"
                } else {
                    "it waited for an environment and will not run"
                }
            ),
            InvocationFailed { request_id, error } => write!(f, "{request_id} Lambda invocation failed: {error}"),
            MalformedResponse { request_id, error } => write!(
                f,
                "{request_id} Execution failed due to configuration error: Malformed Lambda proxy response: {error}"
            ),
            AcceptFailed { error, retry_in } => {
                write!(f, "accept failed: {error}; retrying in {} ms", retry_in.as_millis())
            }
            ConnectionsRefused { refused, open } => {
                write!(f, "{refused} connection(s) refused (503): {open} open, the most this process allows")
            }
            AccessLogFailed { error } => write!(f, "cannot write the access log: {error}"),
            Admin { url, xray_daemon, discovery, discovery_error } => {
                write!(f, "traces and counters on {url} (GET /traces, GET /stats); X-Ray daemon on udp {xray_daemon}")?;
                match (discovery, discovery_error) {
                    (Some(path), _) => write!(f, "; `traces --local` and `top --local` find it through {path}"),
                    (None, Some(e)) => write!(f, "; cannot write the discovery file ({e}): `--local` will not find it"),
                    (None, None) => Ok(()),
                }
            }
            XRayDropped { dropped, total, reason } => {
                write!(f, "X-Ray daemon: dropped {dropped} datagram(s) ({total} since start); the last: {reason}")
            }
            FunctionOutput { .. } | Rules { .. } => Ok(()),
        }
    }
}
