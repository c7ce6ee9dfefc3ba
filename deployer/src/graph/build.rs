//! The graph: built from the registry and checked (unique names, known dependencies, no cycle,
//! nothing wanted depending on what is off), and what follows from its shape alone (the bounds
//! of a cold `up` and of a `down`, the description `graph` prints).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::resources::{LiveStates, Name, Need, Teardown};

use super::{Graph, Node, Step};

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
                    Teardown::DependencyFirst => {
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
        // The deletions' order must have no cycle either (`GoesWith` and `DependencyFirst` edges
        // turn around).
        if topological(&teardown_waits, &teardown_releases).len() != nodes.len() {
            return Err(Error::other("internal: the order of deletions has a cycle"));
        }
        Ok(Graph { nodes, index, deps, dependents, teardown_waits, teardown_releases, goes_with, order })
    }

    /// Names and kinds, in dependency order.
    pub fn names(&self) -> Vec<(Name, &'static str)> {
        self.order.iter().map(|&i| (self.nodes[i].name(), self.nodes[i].kind().label())).collect()
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
    pub fn outputs(&self, ctx: &Ctx, state: &LiveStates) -> std::collections::BTreeMap<&'static str, String> {
        self.nodes.iter().filter_map(|n| state.get_any(n.name()).map(|live| n.outputs(ctx, live))).flatten().collect()
    }

    /// The lower bound of a cold `up`: the longest chain of create calls that must happen one
    /// after another (each node's `create_rounds`, along dependencies), and that chain.
    pub fn bound(&self) -> (u32, Vec<Name>) {
        self.longest_chain(|node| if node.wanted() { node.create_rounds() } else { 0 })
    }

    /// The longest chain along dependencies when each node costs `cost` rounds, and that chain
    /// (dependencies first; nodes that cost nothing left out).
    pub(super) fn longest_chain(&self, cost: impl Fn(&dyn Node) -> u32) -> (u32, Vec<Name>) {
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
                // Deleted before its dependent, which still makes its own call: the teardown edge
                // turned around, but not `goes_with`.
                let deleted_after = !goes_with && self.teardown_waits[i].iter().any(|&(w, _)| w == d);
                serde_json::json!({
                    "on": self.nodes[d].name().to_string(),
                    "need": need,
                    "goes_with": goes_with,
                    "deleted_after": deleted_after,
                })
            });
            serde_json::json!({
                "resource": self.nodes[i].name().to_string(),
                "kind": self.nodes[i].kind(),
                "label": self.nodes[i].kind().label(),
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
