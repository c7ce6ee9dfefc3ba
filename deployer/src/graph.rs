//! The dependency graph of a stack and the executor that runs it: each resource starts as soon
//! as all its dependencies are done, with bounded concurrency. The executor knows nothing about
//! AWS: it calls the [`Resource`] trait and reports [`Event`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::resources::{Change, Ctx, Inputs, Observed, Outputs, Resource};
use crate::ui::Event;

pub struct Graph {
    nodes: Vec<Arc<dyn Resource>>,
    index: HashMap<String, usize>,
    /// For each node, the nodes that depend on it.
    dependents: Vec<Vec<usize>>,
    /// Node indexes in a dependency order (dependencies first).
    order: Vec<usize>,
}

/// What happened to one resource.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created,
    Updated(Vec<Change>),
    Unchanged,
    Failed(String),
    /// Not attempted: a dependency failed, or the run was interrupted.
    Skipped(String),
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
            Outcome::Deleted(true) => "deleted".into(),
            Outcome::Deleted(false) => "already gone".into(),
            Outcome::Kept => "kept".into(),
        }
    }
}

pub struct Report {
    /// In dependency order.
    pub outcomes: Vec<(String, Outcome)>,
    pub outputs: Inputs,
    pub errors: Vec<Error>,
    pub interrupted: bool,
}

impl Report {
    pub fn changes(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| o.is_change()).count()
    }
}

impl Graph {
    /// Check ids are unique, every dependency exists, and there is no cycle.
    pub fn new(nodes: Vec<Arc<dyn Resource>>) -> Result<Graph> {
        let mut index = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if index.insert(n.id().to_string(), i).is_some() {
                return Err(Error::other(format!("internal: resource id `{}` is used twice", n.id())));
            }
        }
        let mut dependents = vec![Vec::new(); nodes.len()];
        let mut indegree = vec![0usize; nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for d in n.deps() {
                let j = *index
                    .get(&d)
                    .ok_or_else(|| Error::other(format!("internal: `{}` depends on unknown resource `{d}`", n.id())))?;
                dependents[j].push(i);
                indegree[i] += 1;
            }
        }
        // Kahn's algorithm, stable in declaration order.
        let mut queue: VecDeque<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(nodes.len());
        while let Some(i) = queue.pop_front() {
            order.push(i);
            for &j in &dependents[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    queue.push_back(j);
                }
            }
        }
        if order.len() != nodes.len() {
            return Err(Error::other("internal: the resource graph has a cycle"));
        }
        Ok(Graph { nodes, index, dependents, order })
    }

    #[cfg(test)]
    pub fn ids_in_order(&self) -> Vec<&str> {
        self.order.iter().map(|&i| self.nodes[i].id()).collect()
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Resource>> {
        self.index.get(id).map(|&i| &self.nodes[i])
    }

    /// Make every resource match its desired state: observe, then create / update / nothing.
    /// `stop` turns true on Ctrl-C: calls in flight finish, nothing new starts.
    pub async fn apply(&self, ctx: Arc<Ctx>, concurrency: usize) -> Report {
        let stop = ctx.stop.clone();
        let n = self.nodes.len();
        let mut waiting: Vec<usize> = (0..n).map(|i| self.nodes[i].deps().len()).collect();
        let mut ready: VecDeque<usize> = self.order.iter().copied().filter(|&i| waiting[i] == 0).collect();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        let mut inputs = Inputs::default();
        let mut errors = Vec::new();
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running: JoinSet<(usize, Result<(Outputs, Outcome)>)> = JoinSet::new();
        let mut interrupted = false;

        loop {
            if *stop.borrow() {
                interrupted = true;
            }
            while !interrupted && let Some(i) = ready.pop_front() {
                let node = self.nodes[i].clone();
                let ctx = ctx.clone();
                let snapshot = inputs.clone();
                let permits = permits.clone();
                running.spawn(async move {
                    let _permit = permits.acquire_owned().await.expect("semaphore open");
                    (i, reconcile(node.as_ref(), &ctx, &snapshot).await)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let (i, result) = joined.expect("resource task panicked");
            let id = self.nodes[i].id().to_string();
            match result {
                Ok((out, outcome)) => {
                    ctx.reporter.event(Event::Finished { id: id.clone(), summary: outcome.summary() });
                    inputs.insert(&id, out);
                    outcomes[i] = Some(outcome);
                    for &j in &self.dependents[i] {
                        waiting[j] -= 1;
                        if waiting[j] == 0 && outcomes[j].is_none() {
                            ready.push_back(j);
                        }
                    }
                }
                Err(e) if e.is_interrupted() => {
                    interrupted = true;
                    ctx.reporter.event(Event::Finished { id: id.clone(), summary: e.to_string() });
                    outcomes[i] = Some(Outcome::Skipped(e.to_string()));
                }
                Err(e) => {
                    let e = e.for_resource(&id);
                    ctx.reporter.event(Event::Failed { id: id.clone(), error: e.to_string() });
                    outcomes[i] = Some(Outcome::Failed(e.to_string()));
                    errors.push(e);
                    self.skip_dependents(i, &id, &mut outcomes);
                }
            }
        }
        let outcomes = self
            .order
            .iter()
            .map(|&i| {
                let o = outcomes[i].clone().unwrap_or_else(|| Outcome::Skipped("interrupted before it started".into()));
                (self.nodes[i].id().to_string(), o)
            })
            .collect();
        Report { outcomes, outputs: inputs, errors, interrupted }
    }

    /// Observe every resource, in dependency order, without changing anything (`plan`,
    /// `status`, and the first half of `down`). A dependency that does not exist yet reads as
    /// "(known after apply)" in its dependents' diffs, and what lives in it is missing.
    pub async fn observe_all(&self, ctx: Arc<Ctx>, concurrency: usize) -> (Vec<(String, Result<Observed>)>, Inputs) {
        let n = self.nodes.len();
        let mut waiting: Vec<usize> = (0..n).map(|i| self.nodes[i].deps().len()).collect();
        let mut ready: VecDeque<usize> = self.order.iter().copied().filter(|&i| waiting[i] == 0).collect();
        let mut results: Vec<Option<Result<Observed>>> = (0..n).map(|_| None).collect();
        let mut inputs = Inputs::lenient();
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running: JoinSet<(usize, Result<Observed>)> = JoinSet::new();
        loop {
            while let Some(i) = ready.pop_front() {
                let (node, ctx, snapshot, permits) =
                    (self.nodes[i].clone(), ctx.clone(), inputs.clone(), permits.clone());
                running.spawn(async move {
                    let _permit = permits.acquire_owned().await.expect("semaphore open");
                    ctx.reporter.event(Event::Started { id: node.id().to_string(), action: "observing".into() });
                    (i, node.observe(&ctx, &snapshot).await)
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let (i, result) = joined.expect("observe task panicked");
            // What lives in a dependency that does not exist does not exist either: no call
            // was made for it (see `Inputs::get`).
            let result = match result {
                Err(Error::MissingDependency { .. }) => Ok(Observed::Missing),
                other => other,
            };
            if let Ok(Observed::Present { outputs, .. }) = &result {
                inputs.insert(self.nodes[i].id(), outputs.clone());
            }
            results[i] = Some(result.map_err(|e| e.for_resource(self.nodes[i].id())));
            // Dependents are observed even when this one failed or is missing (lenient inputs).
            for &j in &self.dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push_back(j);
                }
            }
        }
        let observed = self
            .order
            .iter()
            .map(|&i| (self.nodes[i].id().to_string(), results[i].take().expect("every node observed")))
            .collect();
        (observed, inputs)
    }

    /// Delete the present resources (`live` holds their outputs) in reverse dependency order:
    /// a resource goes once everything that depends on it is gone. Ids in `keep` are left in
    /// place (and so are their dependencies).
    pub async fn destroy(
        &self,
        ctx: Arc<Ctx>,
        live: &Inputs,
        keep: &std::collections::HashSet<String>,
        concurrency: usize,
    ) -> Report {
        let stop = ctx.stop.clone();
        let n = self.nodes.len();
        // What a kept resource depends on is kept too: it is still in use.
        let mut kept_all = keep.clone();
        let mut stack: Vec<String> = keep.iter().cloned().collect();
        while let Some(id) = stack.pop() {
            if let Some(node) = self.get(&id) {
                for d in node.deps() {
                    if kept_all.insert(d.clone()) {
                        stack.push(d);
                    }
                }
            }
        }
        // Count the dependents each node waits for.
        let mut waiting: Vec<usize> = (0..n).map(|i| self.dependents[i].len()).collect();
        let mut ready: VecDeque<usize> = self.order.iter().rev().copied().filter(|&i| waiting[i] == 0).collect();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
        let mut errors = Vec::new();
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running: JoinSet<(usize, Result<Outcome>)> = JoinSet::new();
        let mut interrupted = false;
        loop {
            if *stop.borrow() {
                interrupted = true;
            }
            while !interrupted && let Some(i) = ready.pop_front() {
                let node = self.nodes[i].clone();
                let id = node.id().to_string();
                let kept = kept_all.contains(&id);
                let outputs = live.map.get(&id).cloned();
                let (ctx, permits) = (ctx.clone(), permits.clone());
                running.spawn(async move {
                    let Some(outputs) = outputs else { return (i, Ok(Outcome::Deleted(false))) };
                    if kept {
                        return (i, Ok(Outcome::Kept));
                    }
                    let _permit = permits.acquire_owned().await.expect("semaphore open");
                    ctx.reporter.event(Event::Started { id: id.clone(), action: format!("deleting {}", node.kind()) });
                    (i, node.delete(&ctx, &outputs).await.map(|_| Outcome::Deleted(true)))
                });
            }
            let Some(joined) = running.join_next().await else { break };
            let (i, result) = joined.expect("delete task panicked");
            let id = self.nodes[i].id().to_string();
            match result {
                Ok(outcome) => {
                    ctx.reporter.event(Event::Finished { id: id.clone(), summary: outcome.summary() });
                    outcomes[i] = Some(outcome);
                    for d in self.nodes[i].deps() {
                        let j = self.index[&d];
                        waiting[j] -= 1;
                        if waiting[j] == 0 && outcomes[j].is_none() {
                            ready.push_back(j);
                        }
                    }
                }
                Err(e) if e.is_interrupted() => {
                    interrupted = true;
                    ctx.reporter.event(Event::Finished { id: id.clone(), summary: e.to_string() });
                    outcomes[i] = Some(Outcome::Skipped(e.to_string()));
                }
                Err(e) => {
                    let e = e.for_resource(&id);
                    ctx.reporter.event(Event::Failed { id: id.clone(), error: e.to_string() });
                    outcomes[i] = Some(Outcome::Failed(e.to_string()));
                    errors.push(e);
                    // Its dependencies stay: they are still in use.
                    let mut stack = self.nodes[i].deps();
                    while let Some(d) = stack.pop() {
                        let j = self.index[&d];
                        if outcomes[j].is_none() {
                            outcomes[j] =
                                Some(Outcome::Skipped(format!("`{id}` (which uses it) could not be deleted")));
                            stack.extend(self.nodes[j].deps());
                        }
                    }
                }
            }
        }
        let outcomes = self
            .order
            .iter()
            .rev()
            .map(|&i| {
                let o = outcomes[i].clone().unwrap_or_else(|| Outcome::Skipped("interrupted before it started".into()));
                (self.nodes[i].id().to_string(), o)
            })
            .collect();
        Report { outcomes, outputs: live.clone(), errors, interrupted }
    }

    fn skip_dependents(&self, failed: usize, failed_id: &str, outcomes: &mut [Option<Outcome>]) {
        let mut stack = self.dependents[failed].clone();
        while let Some(j) = stack.pop() {
            if outcomes[j].is_none() {
                outcomes[j] = Some(Outcome::Skipped(format!("depends on `{failed_id}`, which failed")));
                stack.extend(self.dependents[j].iter().copied());
            }
        }
    }
}

/// One resource: observe, then create or update.
async fn reconcile(node: &dyn Resource, ctx: &Ctx, inputs: &Inputs) -> Result<(Outputs, Outcome)> {
    let id = node.id().to_string();
    ctx.reporter.event(Event::Started { id: id.clone(), action: "observing".into() });
    match node.observe(ctx, inputs).await? {
        Observed::Missing => {
            ctx.reporter.event(Event::Started { id, action: format!("creating {}", node.kind()) });
            let out = node.create(ctx, inputs).await?;
            Ok((out, Outcome::Created))
        }
        Observed::Present { outputs, changes } if changes.is_empty() => Ok((outputs, Outcome::Unchanged)),
        Observed::Present { outputs, changes } => {
            if let Some(c) = changes.iter().find(|c| c.replace) {
                return Err(Error::other(format!(
                    "{} must be replaced to change `{}` (live {}, desired {}); movies-stack does not replace it in place: \
                     run `movies-stack down` for this stack and `up` again, or put the config back",
                    node.kind(),
                    c.field,
                    c.live,
                    c.desired
                )));
            }
            let fields: Vec<String> =
                changes.iter().map(|c| format!("{} ({} -> {})", c.field, c.live, c.desired)).collect();
            ctx.reporter.event(Event::Started { id, action: format!("updating {}", fields.join(", ")) });
            let out = node.update(ctx, inputs, &outputs, &changes).await?;
            Ok((out, Outcome::Updated(changes)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::outputs;
    use crate::ui::Recorder;
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::sync::watch;

    /// A fake resource: records start/end times in a shared log; can fail; can be present.
    struct Fake {
        id: String,
        deps: Vec<String>,
        present: bool,
        fail: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    #[async_trait]
    impl Resource for Fake {
        fn id(&self) -> &str {
            &self.id
        }
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn deps(&self) -> Vec<String> {
            self.deps.clone()
        }
        async fn observe(&self, _ctx: &Ctx, inputs: &Inputs) -> Result<Observed> {
            for d in &self.deps {
                inputs.get(d, "id")?; // dependencies' outputs are visible
            }
            Ok(if self.present {
                Observed::Present { outputs: outputs([("id", self.id.clone())]), changes: vec![] }
            } else {
                Observed::Missing
            })
        }
        async fn create(&self, _ctx: &Ctx, _inputs: &Inputs) -> Result<Outputs> {
            self.log.lock().unwrap().push(format!("start {}", self.id));
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.log.lock().unwrap().push(format!("end {}", self.id));
            if self.fail {
                return Err(Error::other("boom"));
            }
            Ok(outputs([("id", self.id.clone())]))
        }
        async fn update(&self, _: &Ctx, _: &Inputs, live: &Outputs, _: &[Change]) -> Result<Outputs> {
            Ok(live.clone())
        }
        async fn delete(&self, _: &Ctx, _: &Outputs) -> Result<()> {
            self.log.lock().unwrap().push(format!("delete {}", self.id));
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        }
    }

    fn fake(id: &str, deps: &[&str], log: &Arc<Mutex<Vec<String>>>) -> Fake {
        Fake {
            id: id.into(),
            deps: deps.iter().map(|s| s.to_string()).collect(),
            present: false,
            fail: false,
            log: log.clone(),
        }
    }

    async fn ctx() -> Arc<Ctx> {
        ctx_with_stop(false).await
    }

    async fn ctx_with_stop(stopped: bool) -> Arc<Ctx> {
        let (tx, stop) = watch::channel(stopped);
        std::mem::forget(tx); // keep the channel open for the whole test
        let settings = crate::aws::AwsSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            dummy_credentials: true,
            ..Default::default()
        };
        Arc::new(Ctx {
            aws: crate::aws::Clients::new(&settings, None).await.unwrap(),
            stack: "t".into(),
            account_id: "123456789012".into(),
            reporter: Arc::new(Recorder::default()),
            apigw_writes: tokio::sync::Mutex::new(()),
            timeouts: Default::default(),
            stop,
        })
    }

    fn pos(log: &[String], what: &str) -> usize {
        log.iter().position(|l| l == what).unwrap_or_else(|| panic!("{what} not in {log:?}"))
    }

    #[tokio::test]
    async fn dependencies_finish_before_dependents_start_and_independents_overlap() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Resource>> = vec![
            Arc::new(fake("c", &["a", "b"], &log)),
            Arc::new(fake("a", &[], &log)),
            Arc::new(fake("b", &[], &log)),
        ];
        let g = Graph::new(nodes).unwrap();
        assert_eq!(g.ids_in_order(), vec!["a", "b", "c"]);
        let report = g.apply(ctx().await, 4).await;
        assert!(report.errors.is_empty());
        assert_eq!(report.changes(), 3);
        let log = log.lock().unwrap().clone();
        assert!(pos(&log, "end a") < pos(&log, "start c"));
        assert!(pos(&log, "end b") < pos(&log, "start c"));
        // a and b ran at the same time.
        assert!(pos(&log, "start b") < pos(&log, "end a"), "{log:?}");
    }

    #[tokio::test]
    async fn concurrency_one_runs_one_at_a_time() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Resource>> = vec![Arc::new(fake("a", &[], &log)), Arc::new(fake("b", &[], &log))];
        Graph::new(nodes).unwrap().apply(ctx().await, 1).await;
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
        let nodes: Vec<Arc<dyn Resource>> = vec![
            Arc::new(bad),
            Arc::new(fake("b", &["a"], &log)),
            Arc::new(fake("c", &["b"], &log)),
            Arc::new(present),
        ];
        let report = Graph::new(nodes).unwrap().apply(ctx().await, 2).await;
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].to_string(), "a: boom");
        let by_id: HashMap<_, _> = report.outcomes.iter().cloned().collect();
        assert!(matches!(by_id["b"], Outcome::Skipped(_)));
        assert!(matches!(by_id["c"], Outcome::Skipped(_)));
        assert!(matches!(by_id["x"], Outcome::Unchanged));
    }

    #[tokio::test]
    async fn a_stop_request_starts_nothing_new() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let nodes: Vec<Arc<dyn Resource>> = vec![Arc::new(fake("a", &[], &log))];
        let report = Graph::new(nodes).unwrap().apply(ctx_with_stop(true).await, 2).await;
        assert!(report.interrupted);
        assert!(log.lock().unwrap().is_empty());
        assert!(matches!(report.outcomes[0].1, Outcome::Skipped(_)));
    }

    #[tokio::test]
    async fn destroy_goes_in_reverse_and_keeps_what_kept_resources_need() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // vpc <- subnet <- function -> table; endpoint -> table, vpc. Keep the table.
        let nodes: Vec<Arc<dyn Resource>> = vec![
            Arc::new(fake("vpc", &[], &log)),
            Arc::new(fake("subnet", &["vpc"], &log)),
            Arc::new(fake("table", &[], &log)),
            Arc::new(fake("function", &["subnet", "table"], &log)),
            Arc::new(fake("endpoint", &["vpc", "table"], &log)),
            Arc::new(fake("gone", &["vpc"], &log)),
        ];
        let g = Graph::new(nodes).unwrap();
        let mut live = Inputs::default();
        for id in ["vpc", "subnet", "table", "function", "endpoint"] {
            live.insert(id, outputs([("id", id.to_string())]));
        }
        let keep = std::collections::HashSet::from(["table".to_string()]);
        let report = g.destroy(ctx().await, &live, &keep, 4).await;
        assert!(report.errors.is_empty());
        let by_id: HashMap<_, _> = report.outcomes.iter().cloned().collect();
        assert!(matches!(by_id["table"], Outcome::Kept));
        assert!(matches!(by_id["gone"], Outcome::Deleted(false)), "absent: already gone");
        assert!(matches!(by_id["vpc"], Outcome::Deleted(true)));
        let log = log.lock().unwrap().clone();
        assert!(!log.contains(&"delete table".to_string()));
        assert!(pos(&log, "delete function") < pos(&log, "delete subnet"));
        assert!(pos(&log, "delete subnet") < pos(&log, "delete vpc"));
        assert!(pos(&log, "delete endpoint") < pos(&log, "delete vpc"));
    }

    #[test]
    fn unknown_dependencies_and_cycles_are_rejected() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let unknown: Vec<Arc<dyn Resource>> = vec![Arc::new(fake("a", &["nope"], &log))];
        assert!(Graph::new(unknown).is_err());
        let cycle: Vec<Arc<dyn Resource>> = vec![Arc::new(fake("a", &["b"], &log)), Arc::new(fake("b", &["a"], &log))];
        assert!(Graph::new(cycle).is_err());
    }
}
