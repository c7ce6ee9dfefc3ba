//! What the passes return: what the observation found, how it compares, and what a run did.

use std::time::Duration;

use crate::error::Error;
use crate::events::Outcome;
use crate::resources::{FieldChange, LiveStates, Name};

use super::AnyLive;

/// One step of the critical path the scheduler actually followed: the node, when it started and
/// when it was done (relative to the start of the phase).
#[derive(Debug, Clone)]
pub struct Step {
    pub name: Name,
    pub start: Duration,
    pub end: Duration,
}

pub struct Report {
    /// In dependency order (reverse dependency order for `destroy`).
    pub outcomes: Vec<(Name, Outcome)>,
    /// The live state of every resource that exists at the end.
    pub state: LiveStates,
    pub errors: Vec<Error>,
    pub interrupted: bool,
    /// The chain of nodes, each released by the previous one, that ended last.
    pub critical_path: Vec<Step>,
}

impl Report {
    pub fn changes(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| o.is_change()).count()
    }
}

/// What the observation found for one resource.
pub type Found = std::result::Result<Option<AnyLive>, String>;

/// A present resource compared with its desired state (`plan`, `status`).
pub enum Compared {
    Missing,
    Present {
        live: AnyLive,
        changes: Vec<FieldChange>,
    },
    /// Turned off in the config, and absent: as desired.
    Off,
    /// Turned off in the config, but present: `up` deletes it.
    Unwanted,
    Error(String),
}

impl Compared {
    /// As the config wants it: present without a change, or turned off and absent.
    pub fn in_sync(&self) -> bool {
        match self {
            Compared::Present { changes, .. } => changes.is_empty(),
            Compared::Off => true,
            Compared::Missing | Compared::Unwanted | Compared::Error(_) => false,
        }
    }
}
