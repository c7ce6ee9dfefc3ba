//! The dependency graph of a stack and the one scheduler that runs it. The executor knows
//! nothing about AWS: it calls the (erased) [`Resource`] trait and reports [`Event`]s.
//!
//! A run has two halves:
//! - **observe**: every resource looks for itself at once (reads only; reads several resources
//!   need are made once, `Ctx::once`): the discovery sweep, one or two round trips in all;
//! - **apply** (dependencies first) or **destroy** (dependents first): one scheduler, given a
//!   direction and the work per node. A node starts as soon as what it needs of its neighbours
//!   is there: a dependency's identifiers (it exists) or, where declared, its readiness.

use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::events::{Action, Event, Outcome};
use crate::resources::{Change, Dep, Drift, Inputs, Name, Need, Resource, Teardown};

/// A resource's live state, erased.
pub type Live = Arc<dyn Any + Send + Sync>;

/// A resource's typed changes, erased, with how they read.
pub struct Diff {
    typed: Box<dyn Any + Send + Sync>,
    pub shown: Vec<Change>,
}

/// The erased resource the executor holds; every [`Resource`] is one.
#[async_trait]
pub trait Node: Send + Sync {
    fn name(&self) -> Name;
    fn kind(&self) -> &'static str;
    fn aws_name(&self) -> Option<String>;
    fn deps(&self) -> Vec<Dep>;
    fn create_rounds(&self) -> u32;
    fn delete_rounds(&self) -> u32;
    fn replaces_itself(&self) -> bool;
    fn wanted(&self) -> bool;
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Live>>;
    fn diff(&self, ctx: &Ctx, inputs: &Inputs, live: &Live) -> Result<Diff>;
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Live>;
    async fn update(&self, ctx: &Ctx, inputs: &Inputs, live: &Live, diff: &Diff) -> Result<Live>;
    async fn delete(&self, ctx: &Ctx, live: &Live) -> Result<()>;
    async fn wait_ready(&self, ctx: &Ctx, live: &Live) -> Result<()>;
    fn health(&self, live: &Live) -> Vec<(&'static str, String)>;
    fn outputs(&self, ctx: &Ctx, live: &Live) -> Vec<(&'static str, String)>;
}

fn typed<R: Resource>(live: &Live) -> Result<&R::Live> {
    live.downcast_ref::<R::Live>().ok_or_else(|| Error::other("internal: a resource's state has another type"))
}

#[async_trait]
impl<R: Resource> Node for R {
    fn name(&self) -> Name {
        self.id().name()
    }
    fn kind(&self) -> &'static str {
        Resource::kind(self)
    }
    fn aws_name(&self) -> Option<String> {
        Resource::aws_name(self)
    }
    fn deps(&self) -> Vec<Dep> {
        Resource::deps(self)
    }
    fn create_rounds(&self) -> u32 {
        Resource::create_rounds(self)
    }
    fn delete_rounds(&self) -> u32 {
        Resource::delete_rounds(self)
    }
    fn replaces_itself(&self) -> bool {
        Resource::replaces_itself(self)
    }
    fn wanted(&self) -> bool {
        Resource::wanted(self)
    }
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Live>> {
        Ok(Resource::observe(self, ctx).await?.map(|l| Arc::new(l) as Live))
    }
    fn diff(&self, ctx: &Ctx, inputs: &Inputs, live: &Live) -> Result<Diff> {
        let changes = Resource::diff(self, ctx, inputs, typed::<R>(live)?)?;
        let shown = changes.iter().map(Drift::show).collect();
        Ok(Diff { typed: Box::new(changes), shown })
    }
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Live> {
        Ok(Arc::new(Resource::create(self, ctx, inputs).await?))
    }
    async fn update(&self, ctx: &Ctx, inputs: &Inputs, live: &Live, diff: &Diff) -> Result<Live> {
        let changes = diff
            .typed
            .downcast_ref::<Vec<R::Change>>()
            .ok_or_else(|| Error::other("internal: a resource's changes have another type"))?;
        Ok(Arc::new(Resource::update(self, ctx, inputs, typed::<R>(live)?, changes).await?))
    }
    async fn delete(&self, ctx: &Ctx, live: &Live) -> Result<()> {
        Resource::delete(self, ctx, typed::<R>(live)?).await
    }
    async fn wait_ready(&self, ctx: &Ctx, live: &Live) -> Result<()> {
        Resource::wait_ready(self, ctx, typed::<R>(live)?).await
    }
    fn health(&self, live: &Live) -> Vec<(&'static str, String)> {
        typed::<R>(live).map(|l| Resource::health(self, l)).unwrap_or_default()
    }
    fn outputs(&self, ctx: &Ctx, live: &Live) -> Vec<(&'static str, String)> {
        typed::<R>(live).map(|l| Resource::outputs(self, ctx, l)).unwrap_or_default()
    }
}

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
    pub state: Inputs,
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
pub type Found = std::result::Result<Option<Live>, String>;

/// A present resource compared with its desired state (`plan`, `status`).
pub enum Compared {
    Missing,
    Present {
        live: Live,
        changes: Vec<Change>,
    },
    /// Turned off in the config, and absent: as desired.
    Off,
    /// Turned off in the config, but present: `up` deletes it.
    Unwanted,
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Dependencies first (apply).
    Forward,
    /// Dependents first (destroy).
    Reverse,
}

/// What one node's work leaves.
struct Done {
    outcome: Outcome,
    /// No `Finished` event: the node was only passed through (the other pass of `apply` does
    /// its work).
    quiet: bool,
    live: Option<Live>,
    /// The wait for readiness, when a dependent needs this node ready.
    ready: Option<BoxFuture<'static, Result<()>>>,
}

enum Msg {
    Done(usize, Result<Done>),
    Ready(usize, Result<()>),
    /// Ctrl-C came while it waited for its turn: it never started.
    NotStarted(usize),
}

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

impl Graph {
    /// Check names are unique, every dependency exists, and there is no cycle.
    pub fn new(nodes: Vec<Arc<dyn Node>>) -> Result<Graph> {
        let mut index = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if index.insert(n.name(), i).is_some() {
                return Err(Error::other(format!("internal: resource `{}` is registered twice", n.name())));
            }
        }
        let mut deps = vec![Vec::new(); nodes.len()];
        let mut dependents = vec![Vec::new(); nodes.len()];
        let mut teardown_waits: Vec<Vec<(usize, Need)>> = vec![Vec::new(); nodes.len()];
        let mut teardown_releases: Vec<Vec<(usize, Need)>> = vec![Vec::new(); nodes.len()];
        let mut goes_with = vec![None; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for d in n.deps() {
                let j = *index.get(&d.on).ok_or_else(|| {
                    Error::other(format!("internal: `{}` depends on unknown resource `{}`", n.name(), d.on))
                })?;
                if n.wanted() && !nodes[j].wanted() {
                    return Err(Error::other(format!(
                        "internal: `{}` is wanted but depends on `{}`, which the config turns off",
                        n.name(),
                        d.on
                    )));
                }
                deps[i].push((j, d.need));
                dependents[j].push((i, d.need));
                match d.teardown {
                    Teardown::DependentFirst => {
                        teardown_waits[j].push((i, Need::Exists));
                        teardown_releases[i].push((j, Need::Exists));
                    }
                    Teardown::GoesWith => {
                        if goes_with[i].replace(j).is_some() {
                            return Err(Error::other(format!("internal: `{}` goes with two resources", n.name())));
                        }
                        teardown_waits[i].push((j, Need::Exists));
                        teardown_releases[j].push((i, Need::Exists));
                    }
                }
            }
        }
        // Dependencies first, stable in registry order.
        let order = topological(&deps, &dependents);
        if order.len() != nodes.len() {
            return Err(Error::other("internal: the resource graph has a cycle"));
        }
        // The deletions' order must have no cycle either (a `GoesWith` edge turns around).
        if topological(&teardown_waits, &teardown_releases).len() != nodes.len() {
            return Err(Error::other("internal: the order of deletions has a cycle"));
        }
        Ok(Graph { nodes, index, deps, dependents, teardown_waits, teardown_releases, goes_with, order })
    }

    /// Names and kinds, in dependency order.
    pub fn names(&self) -> Vec<(Name, &'static str)> {
        self.order.iter().map(|&i| (self.nodes[i].name(), self.nodes[i].kind())).collect()
    }

    /// How many resources the stack has, for people: "23 resources", or "23 resources + 7 turned
    /// off" (by the config).
    pub fn size_text(&self) -> String {
        let wanted = self.nodes.iter().filter(|n| n.wanted()).count();
        match self.nodes.len() - wanted {
            0 => format!("{wanted} resources"),
            off => format!("{wanted} resources + {off} turned off"),
        }
    }

    pub fn node(&self, name: Name) -> Option<&Arc<dyn Node>> {
        self.index.get(&name).map(|&i| &self.nodes[i])
    }

    /// The stack's outputs (`ApiUrl`, `StandardApiKeyId`, ...) from the resources in `state`.
    pub fn outputs(&self, ctx: &Ctx, state: &Inputs) -> std::collections::BTreeMap<&'static str, String> {
        self.nodes.iter().filter_map(|n| state.get_any(n.name()).map(|live| n.outputs(ctx, live))).flatten().collect()
    }

    /// The lower bound of a cold `up`: the longest chain of create calls that must happen one
    /// after another (each node's `create_rounds`, along dependencies), and that chain.
    pub fn bound(&self) -> (u32, Vec<Name>) {
        self.longest_chain(|node| if node.wanted() { node.create_rounds() } else { 0 })
    }

    /// The longest chain along dependencies when each node costs `cost` rounds, and that chain
    /// (dependencies first; nodes that cost nothing left out).
    fn longest_chain(&self, cost: impl Fn(&dyn Node) -> u32) -> (u32, Vec<Name>) {
        self.chain(&self.order, &self.deps, cost)
    }

    /// The longest chain of deletions, dependents first (what goes with a dependency after it),
    /// when each node costs `cost` rounds, and that chain in the order of deletion (nodes that
    /// cost nothing left out).
    pub fn teardown_chain(&self, cost: impl Fn(&dyn Node) -> u32) -> (u32, Vec<Name>) {
        self.chain(&topological(&self.teardown_waits, &self.teardown_releases), &self.teardown_waits, cost)
    }

    /// The longest chain through `order`, where each node comes after its `waits_for`.
    fn chain(
        &self,
        order: &[usize],
        waits_for: &[Vec<(usize, Need)>],
        cost: impl Fn(&dyn Node) -> u32,
    ) -> (u32, Vec<Name>) {
        let mut best: Vec<(u32, Option<usize>)> = vec![(0, None); self.nodes.len()];
        for &i in order {
            let (before, via) =
                waits_for[i].iter().map(|&(d, _)| (best[d].0, Some(d))).max_by_key(|(r, _)| *r).unwrap_or((0, None));
            best[i] = (before + cost(self.nodes[i].as_ref()), via);
        }
        let Some(mut at) = (0..self.nodes.len()).max_by_key(|&i| best[i].0) else { return (0, Vec::new()) };
        let total = best[at].0;
        let mut chain = vec![at];
        while let Some(prev) = best[at].1 {
            chain.push(prev);
            at = prev;
        }
        chain.reverse();
        let chain = chain.into_iter().filter(|&i| cost(self.nodes[i].as_ref()) > 0).map(|i| self.nodes[i].name());
        (total, chain.collect())
    }

    /// The lower bound of a `down` that deletes what `doomed` says: the longest chain of delete
    /// calls that must happen one after another (each node's `delete_rounds`, dependents first;
    /// what goes with a deleted dependency costs nothing), and that chain.
    pub fn teardown_bound(&self, doomed: impl Fn(Name) -> bool) -> (u32, Vec<Name>) {
        self.teardown_chain(|node| {
            let goes = self.goes_with(node.name()).is_some_and(&doomed);
            if doomed(node.name()) && !goes { node.delete_rounds() } else { 0 }
        })
    }

    /// The dependency AWS deletes `name` with ([`Teardown::GoesWith`]), if any.
    fn goes_with(&self, name: Name) -> Option<Name> {
        self.index.get(&name).and_then(|&i| self.goes_with[i]).map(|d| self.nodes[d].name())
    }

    /// Each resource with its kind, create rounds and dependencies (how much of each it needs),
    /// in dependency order: what the benchmark computes other bounds from.
    pub fn describe(&self) -> serde_json::Value {
        let nodes = self.order.iter().map(|&i| {
            let deps = self.deps[i].iter().map(|&(d, need)| {
                let need = match need {
                    Need::Exists => "exists",
                    Need::Ready => "ready",
                };
                let goes_with = self.goes_with[i] == Some(d);
                serde_json::json!({"on": self.nodes[d].name().to_string(), "need": need, "goes_with": goes_with})
            });
            serde_json::json!({
                "resource": self.nodes[i].name().to_string(),
                "kind": self.nodes[i].kind(),
                "name": self.nodes[i].aws_name(),
                "wanted": self.nodes[i].wanted(),
                "create_rounds": self.nodes[i].create_rounds(),
                "delete_rounds": self.nodes[i].delete_rounds(),
                "deps": deps.collect::<Vec<_>>(),
            })
        });
        serde_json::Value::Array(nodes.collect())
    }

    /// How a run went against what the graph allows, for `--output json` (the benchmark reads it,
    /// docs/benchmarks.md): the bound (the longest chain of calls the graph forces one after another,
    /// and that chain), the critical path the scheduler followed (relative to the start of its
    /// phase), and the graph the bound comes from. `rounds_key` names what the bound counts
    /// (`create_rounds`, `delete_rounds`).
    pub fn run_shape(
        &self,
        rounds_key: &str,
        (rounds, chain): &(u32, Vec<Name>),
        critical_path: &[Step],
    ) -> serde_json::Map<String, serde_json::Value> {
        let path: Vec<serde_json::Value> = critical_path
            .iter()
            .map(|s| serde_json::json!({"resource": s.name.to_string(), "start_ms": s.start.as_millis(), "end_ms": s.end.as_millis()}))
            .collect();
        let bound =
            serde_json::json!({rounds_key: rounds, "chain": chain.iter().map(Name::to_string).collect::<Vec<_>>()});
        serde_json::Map::from_iter([
            ("critical_path".to_string(), serde_json::Value::Array(path)),
            ("bound".to_string(), bound),
            ("graph".to_string(), self.describe()),
        ])
    }

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
    pub fn present(&self, found: &[Found]) -> Inputs {
        let mut inputs = Inputs::lenient();
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
                            changes: vec![Change::update(
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
        let work = move |i: usize, _inputs: Inputs| -> BoxFuture<'static, Result<Done>> {
            let (node, ctx, found, doomed) =
                (nodes[i].clone(), work_ctx.clone(), found[i].clone(), doomed.contains(&i));
            Box::pin(async move {
                // Doomed nodes were found present; the others only pass through (their own
                // errors are reported by the apply pass).
                match found.ok().flatten() {
                    Some(live) if doomed => {
                        ctx.printer.event(Event::Started { id: node.name(), action: Action::Deleting(node.kind()) });
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
        let work = move |i: usize, inputs: Inputs| -> BoxFuture<'static, Result<Done>> {
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
                        ctx.printer.event(Event::Started { id, action: Action::Creating(node.kind()) });
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
        let mut report = self.schedule(ctx, Direction::Forward, concurrency, Inputs::default(), work).await;
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
        let work = move |i: usize, _inputs: Inputs| -> BoxFuture<'static, Result<Done>> {
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
                        ctx.printer.event(Event::Started { id: node.name(), action: Action::Deleting(node.kind()) });
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

    /// The one scheduler. Forward: a node starts when each dependency has reached what it needs
    /// of it (exists, or ready); a failure skips the node's dependents. Reverse: a node starts
    /// when everything depending on it is done (and what it goes with, [`Teardown::GoesWith`]);
    /// a failure keeps what waited for it (still in use). At most `concurrency` works at once (waits for readiness hold no permit).
    async fn schedule<F>(&self, ctx: Arc<Ctx>, dir: Direction, concurrency: usize, inputs: Inputs, work: F) -> Report
    where
        F: Fn(usize, Inputs) -> BoxFuture<'static, Result<Done>>,
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

/// Kahn's algorithm, stable in index order: `waits_for[i]` must come before `i`, `releases[i]`
/// come after it. Shorter than the node count when there is a cycle.
fn topological(waits_for: &[Vec<(usize, Need)>], releases: &[Vec<(usize, Need)>]) -> Vec<usize> {
    let mut indegree: Vec<usize> = waits_for.iter().map(Vec::len).collect();
    let mut queue: VecDeque<usize> = (0..waits_for.len()).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(waits_for.len());
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &(j, _) in &releases[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                queue.push_back(j);
            }
        }
    }
    order
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Id;
    use std::sync::Mutex;

    /// A fake resource: records start/end in a shared log; can fail; can be present.
    struct Fake {
        id: Id<String>,
        deps: Vec<Id<String>>,
        /// Dependencies needed ready (not only existing).
        ready_deps: Vec<Id<String>>,
        /// The dependency AWS deletes it with.
        goes_with: Option<Id<String>>,
        present: bool,
        fail: bool,
        /// False: turned off in the config.
        wanted: bool,
        /// `wait_ready` takes this long.
        ready_after: Duration,
        log: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl Resource for Fake {
        type Live = String;
        type Change = Change;
        fn id(&self) -> Id<String> {
            self.id
        }
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn deps(&self) -> Vec<Dep> {
            let dep = |d: &Id<String>| if self.goes_with == Some(*d) { Dep::on(*d).goes_with() } else { Dep::on(*d) };
            self.deps.iter().map(dep).chain(self.ready_deps.iter().map(|d| Dep::ready(*d))).collect()
        }
        fn create_rounds(&self) -> u32 {
            2
        }
        fn wanted(&self) -> bool {
            self.wanted
        }
        async fn observe(&self, _ctx: &Ctx) -> Result<Option<String>> {
            Ok(self.present.then(|| self.id.to_string()))
        }
        fn diff(&self, _ctx: &Ctx, inputs: &Inputs, _live: &String) -> Result<Vec<Change>> {
            for d in &self.deps {
                // Dependencies' states are visible (typed).
                inputs.get(*d)?;
            }
            Ok(vec![])
        }
        async fn create(&self, _ctx: &Ctx, inputs: &Inputs) -> Result<String> {
            for d in &self.deps {
                inputs.get(*d)?;
            }
            self.log.lock().unwrap().push(format!("start {}", self.id));
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.log.lock().unwrap().push(format!("end {}", self.id));
            if self.fail {
                return Err(Error::other("boom"));
            }
            Ok(self.id.to_string())
        }
        async fn update(&self, _: &Ctx, _: &Inputs, live: &String, _: &[Change]) -> Result<String> {
            Ok(live.clone())
        }
        async fn delete(&self, _: &Ctx, _: &String) -> Result<()> {
            self.log.lock().unwrap().push(format!("delete {}", self.id));
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        }
        async fn wait_ready(&self, _: &Ctx, _: &String) -> Result<()> {
            tokio::time::sleep(self.ready_after).await;
            self.log.lock().unwrap().push(format!("ready {}", self.id));
            Ok(())
        }
    }

    fn fake(id: &'static str, deps: &[&'static str], log: &Arc<Mutex<Vec<String>>>) -> Fake {
        Fake {
            id: Id::new(id),
            deps: deps.iter().map(|d| Id::new(d)).collect(),
            ready_deps: Vec::new(),
            goes_with: None,
            present: false,
            fail: false,
            wanted: true,
            ready_after: Duration::ZERO,
            log: log.clone(),
        }
    }

    fn pos(log: &[String], what: &str) -> usize {
        log.iter().position(|l| l == what).unwrap_or_else(|| panic!("{what} not in {log:?}"))
    }

    fn names(g: &Graph) -> Vec<String> {
        g.names().iter().map(|(n, _)| n.to_string()).collect()
    }

    async fn run(g: &Graph, ctx: Arc<Ctx>, concurrency: usize) -> Report {
        let found = g.observe(&ctx).await;
        g.apply(ctx, &found, concurrency).await
    }

    #[tokio::test]
    async fn dependencies_finish_before_dependents_start_and_independents_overlap() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Node>> = vec![
            Arc::new(fake("c", &["a", "b"], &log)),
            Arc::new(fake("a", &[], &log)),
            Arc::new(fake("b", &[], &log)),
        ];
        let g = Graph::new(nodes).unwrap();
        assert_eq!(names(&g), vec!["a", "b", "c"]);
        let report = run(&g, Ctx::for_tests(false).await, 4).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.changes(), 3);
        let log = log.lock().unwrap().clone();
        assert!(pos(&log, "end a") < pos(&log, "start c"));
        assert!(pos(&log, "end b") < pos(&log, "start c"));
        assert!(pos(&log, "start b") < pos(&log, "end a"), "a and b ran at the same time: {log:?}");
        let path: Vec<String> = report.critical_path.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(path.last().map(String::as_str), Some("c"), "{path:?}");
        assert_eq!(path.len(), 2, "{path:?}");
    }

    #[tokio::test]
    async fn existence_is_enough_unless_readiness_is_declared() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut slow = fake("f", &[], &log);
        slow.ready_after = Duration::from_millis(200);
        let mut needs_ready = fake("smoke", &[], &log);
        needs_ready.ready_deps = vec![Id::new("f")];
        let nodes: Vec<Arc<dyn Node>> =
            vec![Arc::new(slow), Arc::new(fake("api", &["f"], &log)), Arc::new(needs_ready)];
        let report = run(&Graph::new(nodes).unwrap(), Ctx::for_tests(false).await, 4).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let log = log.lock().unwrap().clone();
        assert!(pos(&log, "end api") < pos(&log, "ready f"), "api needs only f's identifiers: {log:?}");
        assert!(pos(&log, "ready f") < pos(&log, "start smoke"), "smoke needs f ready: {log:?}");
    }

    #[tokio::test]
    async fn what_the_config_turns_off_is_deleted_first_dependents_first_and_shown_as_off() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let off = |id: &'static str, deps: &[&'static str], present: bool| {
            let mut f = fake(id, deps, &log);
            (f.wanted, f.present) = (false, present);
            f
        };
        let nodes: Vec<Arc<dyn Node>> = vec![
            Arc::new(fake("stage", &[], &log)),
            Arc::new(off("acl", &[], true)),
            Arc::new(off("association", &["acl", "stage"], true)),
            Arc::new(off("alarm", &[], false)),
        ];
        let g = Graph::new(nodes).unwrap();
        let ctx = Ctx::for_tests(false).await;
        let found = g.observe(&ctx).await;
        let compared: Vec<(String, &str)> = g
            .compare(&ctx, &found)
            .into_iter()
            .map(|(n, c)| {
                let c = match c {
                    Compared::Missing => "missing",
                    Compared::Off => "off",
                    Compared::Unwanted => "unwanted",
                    Compared::Present { .. } => "present",
                    Compared::Error(_) => "error",
                };
                (n.to_string(), c)
            })
            .collect();
        let want = [("stage", "missing"), ("acl", "unwanted"), ("alarm", "off"), ("association", "unwanted")];
        assert_eq!(compared, want.map(|(n, c)| (n.to_string(), c)).to_vec());
        let report = g.apply(ctx, &found, 4).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let outcome = |id: &str| report.outcomes.iter().find(|(n, _)| n.to_string() == id).unwrap().1.summary();
        assert_eq!(
            ["stage", "acl", "association", "alarm"].map(outcome),
            ["created", "deleted", "deleted", "no changes"]
        );
        assert_eq!(report.changes(), 3);
        assert!(report.state.get_any(Id::<String>::new("acl").name()).is_none(), "a deleted node leaves no state");
        let log = log.lock().unwrap().clone();
        assert!(pos(&log, "delete association") < pos(&log, "delete acl"), "dependents first: {log:?}");
        assert!(pos(&log, "delete acl") < pos(&log, "start stage"), "removal before the rest: {log:?}");
        assert_eq!(g.bound().0, 2, "what is off costs no create round");
    }

    #[test]
    fn a_wanted_resource_cannot_depend_on_one_turned_off() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut acl = fake("acl", &[], &log);
        acl.wanted = false;
        let nodes: Vec<Arc<dyn Node>> = vec![Arc::new(acl), Arc::new(fake("association", &["acl"], &log))];
        let err = Graph::new(nodes).err().expect("refused").to_string();
        assert!(err.contains("turns off"), "{err}");
    }

    #[tokio::test]
    async fn concurrency_one_runs_one_at_a_time() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Node>> = vec![Arc::new(fake("a", &[], &log)), Arc::new(fake("b", &[], &log))];
        run(&Graph::new(nodes).unwrap(), Ctx::for_tests(false).await, 1).await;
        let log = log.lock().unwrap().clone();
        assert_eq!(log, vec!["start a", "end a", "start b", "end b"]);
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_but_not_independent_resources() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut bad = fake("a", &[], &log);
        bad.fail = true;
        let mut present = fake("x", &[], &log);
        present.present = true;
        let nodes: Vec<Arc<dyn Node>> = vec![
            Arc::new(bad),
            Arc::new(fake("b", &["a"], &log)),
            Arc::new(fake("c", &["b"], &log)),
            Arc::new(present),
        ];
        let report = run(&Graph::new(nodes).unwrap(), Ctx::for_tests(false).await, 2).await;
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].to_string(), "a: boom");
        let by: HashMap<String, Outcome> = report.outcomes.iter().map(|(n, o)| (n.to_string(), o.clone())).collect();
        assert!(matches!(by["b"], Outcome::Skipped(_)));
        assert!(matches!(by["c"], Outcome::Skipped(_)));
        assert!(matches!(by["x"], Outcome::Unchanged));
    }

    /// An absent resource the config turns off has nothing to do: a failed (or interrupted)
    /// dependency does not make it "remaining".
    #[tokio::test]
    async fn what_is_off_is_never_left_remaining() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut bad = fake("stage", &[], &log);
        bad.fail = true;
        let mut association = fake("association", &["stage"], &log);
        association.wanted = false;
        let nodes: Vec<Arc<dyn Node>> = vec![Arc::new(bad), Arc::new(association)];
        let report = run(&Graph::new(nodes).unwrap(), Ctx::for_tests(false).await, 2).await;
        assert_eq!(report.errors.len(), 1);
        let by: HashMap<String, Outcome> = report.outcomes.iter().map(|(n, o)| (n.to_string(), o.clone())).collect();
        assert!(matches!(by["association"], Outcome::Unchanged), "{:?}", by["association"]);
    }

    #[tokio::test]
    async fn a_stop_request_starts_nothing_new() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Node>> = vec![Arc::new(fake("a", &[], &log))];
        let report = run(&Graph::new(nodes).unwrap(), Ctx::for_tests(true).await, 2).await;
        assert!(report.interrupted);
        assert!(log.lock().unwrap().is_empty());
        assert!(matches!(report.outcomes[0].1, Outcome::Skipped(_)));
    }

    #[tokio::test]
    async fn destroy_goes_in_reverse_and_keeps_what_kept_resources_need() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // vpc <- subnet <- function -> table; endpoint -> table, vpc. Keep the table.
        let mut nodes: Vec<Fake> = vec![
            fake("vpc", &[], &log),
            fake("subnet", &["vpc"], &log),
            fake("table", &[], &log),
            fake("function", &["subnet", "table"], &log),
            fake("endpoint", &["vpc", "table"], &log),
            fake("gone", &["vpc"], &log),
        ];
        for n in &mut nodes {
            n.present = n.id.to_string() != "gone";
        }
        let g = Graph::new(nodes.into_iter().map(|n| Arc::new(n) as Arc<dyn Node>).collect()).unwrap();
        let ctx = Ctx::for_tests(false).await;
        let found = g.observe(&ctx).await;
        let keep = HashSet::from([Id::<String>::new("table").name()]);
        let report = g.destroy(ctx, &found, &keep, 4).await;
        assert!(report.errors.is_empty());
        let by: HashMap<String, Outcome> = report.outcomes.iter().map(|(n, o)| (n.to_string(), o.clone())).collect();
        assert!(matches!(by["table"], Outcome::Kept));
        assert!(matches!(by["gone"], Outcome::Deleted(false)), "absent: already gone");
        assert!(matches!(by["vpc"], Outcome::Deleted(true)));
        let log = log.lock().unwrap().clone();
        assert!(!log.contains(&"delete table".to_string()));
        assert!(pos(&log, "delete function") < pos(&log, "delete subnet"));
        assert!(pos(&log, "delete subnet") < pos(&log, "delete vpc"));
        assert!(pos(&log, "delete endpoint") < pos(&log, "delete vpc"));
        assert!(report.state.contains(Id::<String>::new("table").name()), "the kept table is still there");
        assert!(!report.state.contains(Id::<String>::new("vpc").name()));
    }

    #[tokio::test]
    async fn what_goes_with_a_dependency_does_not_hold_its_deletion_back() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // stage -> permission -> function (goes with it), permission -> api; stage -> api.
        let mut nodes: Vec<Fake> = vec![
            fake("function", &[], &log),
            fake("api", &[], &log),
            fake("permission", &["function", "api"], &log),
            fake("stage", &["api", "permission"], &log),
        ];
        for n in &mut nodes {
            n.present = true;
            if n.id.to_string() == "permission" {
                n.goes_with = Some(Id::new("function"));
            }
        }
        let g = Graph::new(nodes.into_iter().map(|n| Arc::new(n) as Arc<dyn Node>).collect()).unwrap();
        // The function is deleted first, with nothing before it; the permission costs nothing.
        let (rounds, chain) = g.teardown_chain(|n| u32::from(n.name().to_string() != "permission"));
        assert_eq!(
            (rounds, chain.iter().map(Name::to_string).collect::<Vec<_>>()),
            (2, vec!["stage".into(), "api".into()])
        );
        let (rounds, chain) = g.teardown_chain(|_| 1);
        assert_eq!(rounds, 3, "{chain:?}");
        let ctx = Ctx::for_tests(false).await;
        let found = g.observe(&ctx).await;
        let report = g.destroy(ctx, &found, &HashSet::new(), 4).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let by: HashMap<String, Outcome> = report.outcomes.iter().map(|(n, o)| (n.to_string(), o.clone())).collect();
        assert!(matches!(by["permission"], Outcome::Deleted(true)), "{:?}", by["permission"]);
        let log = log.lock().unwrap().clone();
        assert!(!log.contains(&"delete permission".to_string()), "no call of its own: {log:?}");
        // The function and the stage start at once: neither waits for the other.
        assert_eq!(
            log[..2].iter().filter(|l| ["delete function", "delete stage"].contains(&l.as_str())).count(),
            2,
            "{log:?}"
        );
        assert!(pos(&log, "delete stage") < pos(&log, "delete api"));

        // Without the function (already gone), the permission is deleted by its own call.
        let log2 = Arc::new(Mutex::new(Vec::new()));
        let mut nodes = vec![fake("function", &[], &log2), fake("permission", &["function"], &log2)];
        nodes[1].present = true;
        nodes[1].goes_with = Some(Id::new("function"));
        let g = Graph::new(nodes.into_iter().map(|n| Arc::new(n) as Arc<dyn Node>).collect()).unwrap();
        let ctx = Ctx::for_tests(false).await;
        let found = g.observe(&ctx).await;
        let report = g.destroy(ctx, &found, &HashSet::new(), 4).await;
        assert!(report.errors.is_empty());
        assert_eq!(log2.lock().unwrap().clone(), vec!["delete permission".to_string()]);
    }

    #[test]
    fn the_bound_is_the_longest_chain_of_create_rounds() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Node>> = vec![
            Arc::new(fake("a", &[], &log)),
            Arc::new(fake("b", &["a"], &log)),
            Arc::new(fake("c", &["b"], &log)),
            Arc::new(fake("d", &["a"], &log)),
        ];
        let g = Graph::new(nodes).unwrap();
        let (rounds, chain) = g.bound();
        assert_eq!(rounds, 6);
        assert_eq!(chain.iter().map(Name::to_string).collect::<Vec<_>>(), ["a", "b", "c"]);
        // Another cost: free nodes are passed through, not shown.
        let (rounds, chain) = g.longest_chain(|n| u32::from(!["b", "d"].contains(&n.name().to_string().as_str())));
        assert_eq!(rounds, 2);
        assert_eq!(chain.iter().map(Name::to_string).collect::<Vec<_>>(), ["a", "c"]);
        let described = g.describe();
        assert_eq!(described[1]["resource"], "b");
        assert_eq!(described[1]["deps"][0], serde_json::json!({"on": "a", "need": "exists", "goes_with": false}));
        assert_eq!(described[1]["create_rounds"], 2);
        assert_eq!(described[1]["delete_rounds"], 1);
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_rejected() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let unknown: Vec<Arc<dyn Node>> = vec![Arc::new(fake("a", &["nope"], &log))];
        assert!(Graph::new(unknown).is_err());
        let cycle: Vec<Arc<dyn Node>> = vec![Arc::new(fake("a", &["b"], &log)), Arc::new(fake("b", &["a"], &log))];
        assert!(Graph::new(cycle).is_err());
        // No cycle of dependencies, but one of deletions: `a` goes with `b`, which goes after
        // `c` (it depends on `b`), which goes after `a` (`a` depends on it).
        let mut a = fake("a", &["b", "c"], &log);
        a.goes_with = Some(Id::new("b"));
        let teardown: Vec<Arc<dyn Node>> =
            vec![Arc::new(a), Arc::new(fake("b", &[], &log)), Arc::new(fake("c", &["b"], &log))];
        let e = Graph::new(teardown).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("order of deletions has a cycle"), "{e}");
    }
}
