//! The dependency graph of a stack and the one scheduler that runs it. The executor knows
//! nothing about AWS: it calls the (erased) [`Resource`] trait and reports [`Event`]s.
//!
//! A run has two halves:
//! - **observe**: every resource looks for itself at once (reads only; reads several resources
//!   need are made once, `Ctx::once`): the discovery sweep, one or two round trips in all;
//! - **apply** (dependencies first) or **destroy** (dependents first): one scheduler, given a
//!   direction and the work per node. A node starts as soon as what it needs of its neighbours
//!   is there: a dependency's identifiers (it exists) or, where declared, its readiness.
//!
//! One idea per file: [`node`] (the erased resource the executor holds), [`report`] (what a
//! pass returns), [`build`] (the graph, its checks and its bounds), [`passes`] (observe,
//! compare, apply, destroy) and [`schedule`] (the one scheduler they share).

use std::collections::HashMap;
use std::sync::Arc;

use crate::resources::{Name, Need};

mod build;
mod node;
mod passes;
mod report;
mod schedule;

pub use node::{AnyLive, Node};
pub use report::{Compared, Found, Report, Step};

pub struct Graph {
    nodes: Vec<Arc<dyn Node>>,
    index: HashMap<Name, usize>,
    /// For each node: what it depends on, and how.
    deps: Vec<Vec<(usize, Need)>>,
    /// For each node: what depends on it, and how.
    dependents: Vec<Vec<(usize, Need)>>,
    /// For each node: what is deleted before it (its dependents, and what it goes with:
    /// [`Teardown::GoesWith`]), and what waits for its deletion.
    teardown_waits: Vec<Vec<(usize, Need)>>,
    teardown_releases: Vec<Vec<(usize, Need)>>,
    /// For each node: the dependency AWS deletes it with, if any.
    goes_with: Vec<Option<usize>>,
    /// Node indexes in a dependency order (dependencies first), stable in registry order.
    order: Vec<usize>,
}

#[cfg(test)]
mod tests;
