//! The passes over the graph: observe (every resource at once), compare, apply (what the config
//! turned off first, dependents first; then the rest, dependencies first) and destroy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::events::{Action, Event, Outcome};
use crate::resources::{FieldChange, LiveStates, Name, Need};

use super::schedule::{Direction, Done};
use super::{Compared, Found, Graph, Node, Report};

impl Graph {
    /// Every resource looks for itself, all at once (reads only). Indexed like the registry.
    pub async fn observe(&self, ctx: &Arc<Ctx>) -> Vec<Found> {
        let mut set = JoinSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let (node, ctx) = (node.clone(), ctx.clone());
            set.spawn(
                async move { (i, node.observe(&ctx).await.map_err(|e| e.for_resource(node.name()).to_string())) },
            );
        }
        let mut found: Vec<Option<Found>> = (0..self.nodes.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined.expect("observe task panicked");
            found[i] = Some(result);
        }
        found.into_iter().map(|f| f.expect("every node observed")).collect()
    }

    /// Some resources look for themselves, all at once (reads only), for the commands that need
    /// only them (`smoke`, `usage`, `logs`).
    pub async fn observe_only(&self, ctx: &Arc<Ctx>, names: &[Name]) -> Vec<(Name, Found)> {
        let nodes: Vec<Arc<dyn Node>> = names.iter().filter_map(|n| self.node(*n).cloned()).collect();
        futures::future::join_all(nodes.iter().map(|node| async move {
            let found = node.observe(ctx).await.map_err(|e| e.for_resource(node.name()).to_string());
            (node.name(), found)
        }))
        .await
    }

    /// The present resources' states, as lenient inputs.
    pub fn present(&self, found: &[Found]) -> LiveStates {
        let mut inputs = LiveStates::lenient();
        for (i, f) in found.iter().enumerate() {
            if let Ok(Some(live)) = f {
                inputs.insert_any(self.nodes[i].name(), live.clone());
            }
        }
        inputs
    }

    /// Compare every present resource with its desired state, without changing anything
    /// (`plan`, `status`). In dependency order.
    pub fn compare(&self, ctx: &Ctx, found: &[Found]) -> Vec<(Name, Compared)> {
        let inputs = self.present(found);
        self.order
            .iter()
            .map(|&i| {
                let node = &self.nodes[i];
                let compared = match &found[i] {
                    Err(e) => Compared::Error(e.clone()),
                    Ok(None) if !node.wanted() => Compared::Off,
                    Ok(Some(_)) if !node.wanted() => Compared::Unwanted,
                    Ok(None) => Compared::Missing,
                    Ok(Some(live)) => match node.diff(ctx, &inputs, live) {
                        Ok(diff) => Compared::Present { live: live.clone(), changes: diff.shown },
                        // Compared once what it needs exists.
                        Err(Error::MissingDependency { resource }) => Compared::Present {
                            live: live.clone(),
                            changes: vec![FieldChange::update(
                                "depends on",
                                format!("{resource} (to be created)"),
                                "missing",
                            )],
                        },
                        Err(e) => Compared::Error(e.for_resource(node.name()).to_string()),
                    },
                };
                (node.name(), compared)
            })
            .collect()
    }

    /// Make every resource match its desired state: create what is missing, update what
    /// differs, in dependency order, `concurrency` at a time. Ctrl-C (`ctx.stop`): calls in
    /// flight finish, nothing new starts.
    ///
    /// What the config turns off ([`Node::wanted`]) and still exists is deleted first, in a
    /// reverse pass of its own (dependents first), then everything else is applied.
    pub async fn apply(&self, ctx: Arc<Ctx>, found: &[Found], concurrency: usize) -> Report {
        let unwanted: HashSet<usize> =
            (0..self.nodes.len()).filter(|&i| !self.nodes[i].wanted() && matches!(found[i], Ok(Some(_)))).collect();
        if unwanted.is_empty() {
            return self.apply_wanted(ctx, found, concurrency, HashMap::new()).await;
        }
        let removed = self.remove(ctx.clone(), found, &unwanted, concurrency).await;
        let before: HashMap<usize, Outcome> = removed
            .outcomes
            .iter()
            .filter_map(|(name, o)| self.index.get(name).filter(|i| unwanted.contains(i)).map(|&i| (i, o.clone())))
            .collect();
        let mut report = self.apply_wanted(ctx, found, concurrency, before).await;
        report.errors.extend(removed.errors);
        report.interrupted |= removed.interrupted;
        report
    }

    /// Delete the `doomed` nodes (dependents first); every other node is passed through quietly.
    async fn remove(&self, ctx: Arc<Ctx>, found: &[Found], doomed: &HashSet<usize>, concurrency: usize) -> Report {
        let state = self.present(found);
        let found: Vec<Found> = found.to_vec();
        let nodes = self.nodes.clone();
        let doomed = doomed.clone();
        let work_ctx = ctx.clone();
        let work = move |i: usize, _inputs: LiveStates| -> BoxFuture<'static, Result<Done>> {
            let (node, ctx, found, doomed) =
                (nodes[i].clone(), work_ctx.clone(), found[i].clone(), doomed.contains(&i));
            Box::pin(async move {
                // Doomed nodes were found present; the others only pass through (their own
                // errors are reported by the apply pass).
                match found.ok().flatten() {
                    Some(live) if doomed => {
                        ctx.printer
                            .event(Event::Started { id: node.name(), action: Action::Deleting(node.kind().label()) });
                        node.delete(&ctx, &live).await?;
                        Ok(Done { outcome: Outcome::Deleted(true), quiet: false, live: None, ready: None })
                    }
                    live => Ok(Done { outcome: Outcome::Unchanged, quiet: true, live, ready: None }),
                }
            })
        };
        self.schedule(ctx, Direction::Reverse, concurrency, state, work).await
    }

    /// `apply` of the wanted nodes; the unwanted ones end with their outcome in `removed`
    /// (deleted by [`Graph::remove`]) or as unchanged (absent already).
    async fn apply_wanted(
        &self,
        ctx: Arc<Ctx>,
        found: &[Found],
        concurrency: usize,
        removed: HashMap<usize, Outcome>,
    ) -> Report {
        // Ready is waited for only where a dependent needs it.
        let needs_ready: Vec<bool> =
            (0..self.nodes.len()).map(|i| self.dependents[i].iter().any(|&(_, n)| n == Need::Ready)).collect();
        let found: Vec<Found> = found.to_vec();
        let nodes = self.nodes.clone();
        let work_ctx = ctx.clone();
        let before = removed.clone();
        let work = move |i: usize, inputs: LiveStates| -> BoxFuture<'static, Result<Done>> {
            let (node, ctx, found, ready) = (nodes[i].clone(), work_ctx.clone(), found[i].clone(), needs_ready[i]);
            let removed = removed.get(&i).cloned();
            Box::pin(async move {
                if !node.wanted() {
                    // Removed before this pass, or absent as desired.
                    let quiet = removed.is_some();
                    return Ok(Done { outcome: removed.unwrap_or(Outcome::Unchanged), quiet, live: None, ready: None });
                }
                let id = node.name();
                let (outcome, live) = match found.map_err(Error::other)? {
                    None => {
                        ctx.printer.event(Event::Started { id, action: Action::Creating(node.kind().label()) });
                        (Outcome::Created, node.create(&ctx, &inputs).await?)
                    }
                    Some(live) => {
                        let diff = node.diff(&ctx, &inputs, &live)?;
                        if diff.shown.is_empty() {
                            (Outcome::Unchanged, live)
                        } else if let Some(c) = diff.shown.iter().find(|c| c.replace && !node.replaces_itself()) {
                            return Err(Error::other(format!(
                                "{} must be replaced to change `{}` (live {}, desired {}); movies-stack does not replace it \
                                 in place: run `movies-stack down` for this stack and `up` again, or put the config back",
                                node.kind(),
                                c.field,
                                c.live,
                                c.desired
                            )));
                        } else {
                            let fields =
                                diff.shown.iter().map(|c| format!("{} ({} -> {})", c.field, c.live, c.desired));
                            ctx.printer.event(Event::Started { id, action: Action::Updating(fields.collect()) });
                            let live = node.update(&ctx, &inputs, &live, &diff).await?;
                            (Outcome::Updated(diff.shown), live)
                        }
                    }
                };
                let ready = ready.then(|| {
                    let (node, ctx, live) = (node.clone(), ctx.clone(), live.clone());
                    Box::pin(async move {
                        ctx.printer.event(Event::Started { id: node.name(), action: Action::Readying });
                        node.wait_ready(&ctx, &live).await
                    }) as BoxFuture<'static, Result<()>>
                });
                Ok(Done { outcome, quiet: false, live: Some(live), ready })
            })
        };
        let mut report = self.schedule(ctx, Direction::Forward, concurrency, LiveStates::default(), work).await;
        // A node the config turns off has nothing left to do in this pass (removed before it, or
        // absent): when a Ctrl-C or a failed dependency kept the pass from reaching it, it is
        // not "remaining".
        for (name, outcome) in &mut report.outcomes {
            let Some(&i) = self.index.get(name) else { continue };
            if !self.nodes[i].wanted() && matches!(outcome, Outcome::Skipped(_)) {
                *outcome = before.get(&i).cloned().unwrap_or(Outcome::Unchanged);
            }
        }
        report
    }

    /// Delete the present resources in reverse dependency order: a resource goes once everything
    /// that depends on it is gone, every independent deletion at once (`concurrency` at most).
    /// `keep` is left in place, and so is what it depends on.
    pub async fn destroy(&self, ctx: Arc<Ctx>, found: &[Found], keep: &HashSet<Name>, concurrency: usize) -> Report {
        let mut kept: HashSet<usize> = keep.iter().filter_map(|n| self.index.get(n).copied()).collect();
        let mut stack: Vec<usize> = kept.iter().copied().collect();
        while let Some(i) = stack.pop() {
            for &(d, _) in &self.deps[i] {
                if kept.insert(d) {
                    stack.push(d);
                }
            }
        }
        let state = self.present(found);
        // What goes with a dependency that this run deletes needs no call of its own: the
        // scheduler starts it once that dependency is deleted.
        let with: Vec<Option<Name>> = (0..self.nodes.len())
            .map(|i| {
                self.goes_with[i]
                    .filter(|&d| matches!(found[d], Ok(Some(_))) && !kept.contains(&d))
                    .map(|d| self.nodes[d].name())
            })
            .collect();
        let found: Vec<Found> = found.to_vec();
        let nodes = self.nodes.clone();
        let work_ctx = ctx.clone();
        let work = move |i: usize, _inputs: LiveStates| -> BoxFuture<'static, Result<Done>> {
            let (node, ctx, found, kept) = (nodes[i].clone(), work_ctx.clone(), found[i].clone(), kept.contains(&i));
            let with = with[i];
            Box::pin(async move {
                let outcome = match found.map_err(Error::other)? {
                    None => Outcome::Deleted(false),
                    Some(live) if kept => {
                        return Ok(Done { outcome: Outcome::Kept, quiet: false, live: Some(live), ready: None });
                    }
                    Some(_) if let Some(with) = with => {
                        ctx.progress(node.name(), format!("deleted by AWS with `{with}`"));
                        Outcome::Deleted(true)
                    }
                    Some(live) => {
                        ctx.printer
                            .event(Event::Started { id: node.name(), action: Action::Deleting(node.kind().label()) });
                        node.delete(&ctx, &live).await?;
                        Outcome::Deleted(true)
                    }
                };
                Ok(Done { outcome, quiet: false, live: None, ready: None })
            })
        };
        let mut report = self.schedule(ctx, Direction::Reverse, concurrency, state, work).await;
        for (name, outcome) in &report.outcomes {
            if matches!(outcome, Outcome::Deleted(_)) {
                report.state.remove(*name);
            }
        }
        report
    }
}
