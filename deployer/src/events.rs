//! What the engine tells the printer, typed: phases, work started on a resource, its progress,
//! waits and retries, and what became of it. Below everything that emits or prints them.

use std::time::Duration;

use crate::ids::Name;

/// What the engine is doing as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
