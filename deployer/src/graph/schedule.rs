//! The one scheduler every pass runs: a node starts as soon as what it needs of its neighbours
//! is there, bounded by the concurrency; failures skip what depended on them; Ctrl-C starts
//! nothing new. It also records the critical path the run followed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::error::Result;
use crate::events::{Event, Outcome};
use crate::resources::{LiveStates, Name, Need};

use super::{AnyLive, Graph, Node, Report, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Dependencies first (apply).
    Forward,
    /// Dependents first (destroy).
    Reverse,
}

/// What one node's work leaves.
pub(super) struct Done {
    pub(super) outcome: Outcome,
    /// No `Finished` event: the node was only passed through (the other pass of `apply` does
    /// its work).
    pub(super) quiet: bool,
    pub(super) live: Option<AnyLive>,
    /// The wait for readiness, when a dependent needs this node ready.
    pub(super) ready: Option<BoxFuture<'static, Result<()>>>,
}

enum Msg {
    Done(usize, Result<Done>),
    Ready(usize, Result<()>),
    /// Ctrl-C came while it waited for its turn: it never started.
    NotStarted(usize),
}

impl Graph {
    /// The one scheduler. Forward: a node starts when each dependency has reached what it needs
    /// of it (exists, or ready); a failure skips the node's dependents. Reverse: a node starts
    /// when everything depending on it is done (and what it goes with, [`Teardown::GoesWith`]);
    /// a failure keeps what waited for it (still in use). At most `concurrency` works at once (waits for readiness hold no permit).
    pub(super) async fn schedule<F>(
        &self,
        ctx: Arc<Ctx>,
        dir: Direction,
        concurrency: usize,
        inputs: LiveStates,
        work: F,
    ) -> Report
    where
        F: Fn(usize, LiveStates) -> BoxFuture<'static, Result<Done>>,
    {
        let n = self.nodes.len();
        let t0 = Instant::now();
        // What each node waits for: (dependency, need) forward, dependents reverse.
        let blockers = |i: usize| -> &Vec<(usize, Need)> {
            match dir {
                Direction::Forward => &self.deps[i],
                Direction::Reverse => &self.teardown_waits[i],
            }
        };
        let unblocks = |i: usize| -> &Vec<(usize, Need)> {
            match dir {
                Direction::Forward => &self.dependents[i],
                Direction::Reverse => &self.teardown_releases[i],
            }
        };
        let mut waiting: Vec<usize> = (0..n).map(|i| blockers(i).len()).collect();
        let order: Vec<usize> = match dir {
            Direction::Forward => self.order.clone(),
            Direction::Reverse => self.order.iter().rev().copied().collect(),
        };
        let mut ready_queue: VecDeque<usize> = order.iter().copied().filter(|&i| waiting[i] == 0).collect();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        let mut started: Vec<Option<Duration>> = vec![None; n];
        let mut ended: Vec<Option<Duration>> = vec![None; n];
        let mut released_by: Vec<Option<usize>> = vec![None; n];
        let mut inputs = inputs;
        let mut errors = Vec::new();
        let mut interrupted = false;
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running: JoinSet<Msg> = JoinSet::new();
        let stop = ctx.stop.clone();

        // Release what waited on `i` for `need` (reverse: any need).
        let release = |i: usize,
                       need: Need,
                       waiting: &mut Vec<usize>,
                       released_by: &mut Vec<Option<usize>>,
                       queue: &mut VecDeque<usize>,
                       outcomes: &[Option<Outcome>]| {
            for &(j, n) in unblocks(i) {
                if dir == Direction::Forward && n != need {
                    continue;
                }
                waiting[j] -= 1;
                released_by[j] = Some(i);
                if waiting[j] == 0 && outcomes[j].is_none() {
                    queue.push_back(j);
                }
            }
        };

        loop {
            if *stop.borrow() {
                interrupted = true;
            }
            while !interrupted && let Some(i) = ready_queue.pop_front() {
                if outcomes[i].is_some() {
                    continue; // skipped meanwhile (a failure upstream)
                }
                started[i] = Some(t0.elapsed());
                let fut = work(i, inputs.clone());
                let (permits, stop) = (permits.clone(), stop.clone());
                running.spawn(async move {
                    let _permit = permits.acquire_owned().await.expect("semaphore open");
                    // Ctrl-C while it waited for its turn: it does not start.
                    if *stop.borrow() {
                        return Msg::NotStarted(i);
                    }
                    Msg::Done(i, fut.await)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            match joined.expect("a resource task panicked") {
                Msg::NotStarted(i) => {
                    interrupted = true;
                    started[i] = None;
                }
                Msg::Done(i, Ok(done)) => {
                    let name = self.nodes[i].name();
                    ended[i] = Some(t0.elapsed());
                    if !done.quiet {
                        ctx.printer.event(Event::Finished { id: name, outcome: done.outcome.clone() });
                    }
                    if let Some(live) = done.live {
                        inputs.insert_any(name, live);
                    }
                    outcomes[i] = Some(done.outcome);
                    release(i, Need::Exists, &mut waiting, &mut released_by, &mut ready_queue, &outcomes);
                    match done.ready {
                        Some(ready) => {
                            running.spawn(async move { Msg::Ready(i, ready.await) });
                        }
                        None if dir == Direction::Forward => {
                            release(i, Need::Ready, &mut waiting, &mut released_by, &mut ready_queue, &outcomes);
                        }
                        None => {}
                    }
                }
                Msg::Ready(i, Ok(())) => {
                    ended[i] = Some(t0.elapsed());
                    release(i, Need::Ready, &mut waiting, &mut released_by, &mut ready_queue, &outcomes);
                }
                Msg::Done(i, Err(e)) | Msg::Ready(i, Err(e)) => {
                    let name = self.nodes[i].name();
                    ended[i] = Some(t0.elapsed());
                    if e.is_interrupted() {
                        interrupted = true;
                        outcomes[i] = Some(Outcome::Stopped(e.to_string()));
                        ctx.printer.event(Event::Finished { id: name, outcome: Outcome::Stopped(e.to_string()) });
                        continue;
                    }
                    let e = e.for_resource(name);
                    ctx.printer.event(Event::Finished { id: name, outcome: Outcome::Failed(e.to_string()) });
                    outcomes[i] = Some(Outcome::Failed(e.to_string()));
                    errors.push(e);
                    // Forward: its dependents cannot be done. Reverse: its dependencies are
                    // still in use.
                    let why = match dir {
                        Direction::Forward => format!("depends on `{name}`, which failed"),
                        Direction::Reverse => format!("`{name}` (which uses it) could not be deleted"),
                    };
                    let mut stack: Vec<usize> = unblocks(i).iter().map(|&(j, _)| j).collect();
                    while let Some(j) = stack.pop() {
                        if outcomes[j].is_none() && started[j].is_none() {
                            outcomes[j] = Some(Outcome::Skipped(why.clone()));
                            stack.extend(unblocks(j).iter().map(|&(k, _)| k));
                        }
                    }
                }
            }
        }
        let outcomes: Vec<(Name, Outcome)> = order
            .iter()
            .map(|&i| {
                let o = outcomes[i].clone().unwrap_or_else(|| Outcome::Skipped("interrupted before it started".into()));
                (self.nodes[i].name(), o)
            })
            .collect();
        let critical_path = critical_path(&self.nodes, &started, &ended, &released_by);
        Report { outcomes, state: inputs, errors, interrupted, critical_path }
    }
}

/// Back from the node that ended last, through the node that released each one.
fn critical_path(
    nodes: &[Arc<dyn Node>],
    started: &[Option<Duration>],
    ended: &[Option<Duration>],
    released_by: &[Option<usize>],
) -> Vec<Step> {
    let Some(mut at) = (0..nodes.len()).filter(|&i| ended[i].is_some()).max_by_key(|&i| ended[i]) else {
        return Vec::new();
    };
    let mut path = Vec::new();
    loop {
        path.push(Step {
            name: nodes[at].name(),
            start: started[at].unwrap_or_default(),
            end: ended[at].unwrap_or_default(),
        });
        match released_by[at] {
            Some(prev) if !path.iter().any(|s| s.name == nodes[prev].name()) => at = prev,
            _ => break,
        }
    }
    path.reverse();
    path
}
