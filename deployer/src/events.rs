//! What the engine tells the printer, typed: phases, work started on a resource, its progress,
//! waits and retries, and what became of it. Each has a [`Level`] (what `-v` and `-q` show) and a
//! JSON form (`--output json`). Below everything that emits or prints them.

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
}

/// What happened to one resource.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created,
    Updated(Vec<Change>),
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
pub struct Change {
    pub field: String,
    pub desired: String,
    pub live: String,
    /// The field cannot be changed in place: the resource must be replaced.
    pub replace: bool,
}

impl Change {
    pub fn update(field: impl Into<String>, desired: impl ToString, live: impl ToString) -> Self {
        Change { field: field.into(), desired: desired.to_string(), live: live.to_string(), replace: false }
    }

    pub fn replace(field: impl Into<String>, desired: impl ToString, live: impl ToString) -> Self {
        Change { field: field.into(), desired: desired.to_string(), live: live.to_string(), replace: true }
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
    /// A fact worth a line: a summary, what was found.
    Info,
    /// What the user must read to answer or use the command (`down`'s confirmation): shown even
    /// with `-q`.
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
        }
    }
}

/// The JSON form of an event (`--output json`): an object whose `"event"` names the variant
/// (`"started"`, `"finished"`, ...), with the resource's `id`, and
/// durations in milliseconds (`elapsed_ms`). The tags and field names are stable: scripts read
/// them.
impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let millis = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let wire = match self {
            Event::Phase(phase) => Wire::Phase { phase: *phase },
            Event::Started { id, action } => Wire::Started { id: id.to_string(), action: action.into() },
            Event::Progress { id, message } => Wire::Progress { id: id.to_string(), message },
            Event::Waiting { id, what, elapsed, deadline } => {
                Wire::Waiting { id: id.to_string(), what, elapsed_ms: millis(elapsed), deadline_ms: millis(deadline) }
            }
            Event::Retrying { id, what, code, delay, elapsed, deadline } => Wire::Retrying {
                id: id.to_string(),
                what,
                code,
                delay_ms: millis(delay),
                elapsed_ms: millis(elapsed),
                deadline_ms: millis(deadline),
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
