use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::events::Outcome;
use crate::resources::{CfnResource, Dep, FieldChange, Grant, Id, Kind, LiveStates, Resource, Scope};

/// A fake resource: records start/end in a shared log; can fail; can be present.
struct Fake {
    id: Id<String>,
    deps: Vec<Id<String>>,
    /// Dependencies needed ready (not only existing).
    ready_deps: Vec<Id<String>>,
    /// The dependency AWS deletes it with.
    goes_with: Option<Id<String>>,
    /// Deleted after this dependency ([`crate::resources::Teardown::DependencyFirst`]).
    deleted_after: Option<Id<String>>,
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
    type Change = FieldChange;
    fn id(&self) -> Id<String> {
        self.id
    }
    fn kind(&self) -> Kind {
        Kind::Vpc
    }
    fn grants(&self, _scope: &Scope) -> Vec<Grant> {
        Vec::new()
    }
    fn deps(&self) -> Vec<Dep> {
        let dep = |d: &Id<String>| match () {
            () if self.goes_with == Some(*d) => Dep::on(*d).goes_with(),
            () if self.deleted_after == Some(*d) => Dep::on(*d).deleted_after(),
            () => Dep::on(*d),
        };
        self.deps.iter().map(dep).chain(self.ready_deps.iter().map(|d| Dep::ready(*d))).collect()
    }
    fn create_rounds(&self) -> u32 {
        2
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn export(&self, _ctx: &Ctx, live: &String) -> Vec<CfnResource> {
        let import = crate::cfn::identifier(&[("VpcId", live)]);
        vec![CfnResource::new(self.id, "AWS::EC2::VPC", serde_json::json!({}), import)]
    }
    async fn observe(&self, _ctx: &Ctx) -> Result<Option<String>> {
        Ok(self.present.then(|| self.id.to_string()))
    }
    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, _live: &String) -> Result<Vec<FieldChange>> {
        for d in &self.deps {
            // Dependencies' states are visible (typed).
            inputs.get(*d)?;
        }
        Ok(vec![])
    }
    async fn create(&self, _ctx: &Ctx, inputs: &LiveStates) -> Result<String> {
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
    async fn update(&self, _: &Ctx, _: &LiveStates, live: &String, _: &[FieldChange]) -> Result<String> {
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
        deleted_after: None,
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
    let nodes: Vec<Arc<dyn Node>> =
        vec![Arc::new(fake("c", &["a", "b"], &log)), Arc::new(fake("a", &[], &log)), Arc::new(fake("b", &[], &log))];
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
    let nodes: Vec<Arc<dyn Node>> = vec![Arc::new(slow), Arc::new(fake("api", &["f"], &log)), Arc::new(needs_ready)];
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
    assert_eq!(["stage", "acl", "association", "alarm"].map(outcome), ["created", "deleted", "deleted", "no changes"]);
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
    let nodes: Vec<Arc<dyn Node>> =
        vec![Arc::new(bad), Arc::new(fake("b", &["a"], &log)), Arc::new(fake("c", &["b"], &log)), Arc::new(present)];
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
async fn what_a_deletion_releases_is_deleted_after_it() {
    let log = Arc::new(Mutex::new(Vec::new()));
    // key -> plan -> stage (deleted after it) -> api; plan -> api.
    let mut nodes: Vec<Fake> = vec![
        fake("api", &[], &log),
        fake("stage", &["api"], &log),
        fake("plan", &["api", "stage"], &log),
        fake("key", &["plan"], &log),
    ];
    for n in &mut nodes {
        n.present = true;
        if n.id.to_string() == "plan" {
            n.deleted_after = Some(Id::new("stage"));
        }
    }
    let g = Graph::new(nodes.into_iter().map(|n| Arc::new(n) as Arc<dyn Node>).collect()).unwrap();
    assert_eq!(g.describe()[2]["deps"][1]["deleted_after"], true);
    // The stage and the key start at once; the plan after both, the API last.
    let (rounds, chain) = g.teardown_chain(|_| 1);
    assert_eq!(rounds, 3, "{chain:?}");
    assert_eq!(chain.iter().skip(1).map(Name::to_string).collect::<Vec<_>>(), ["plan", "api"]);
    let ctx = Ctx::for_tests(false).await;
    let found = g.observe(&ctx).await;
    let report = g.destroy(ctx, &found, &HashSet::new(), 4).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let log = log.lock().unwrap().clone();
    assert!(pos(&log, "delete stage") < pos(&log, "delete plan"), "{log:?}");
    assert!(pos(&log, "delete key") < pos(&log, "delete plan"), "{log:?}");
    assert!(pos(&log, "delete plan") < pos(&log, "delete api"), "{log:?}");
    assert!(log.contains(&"delete plan".to_string()), "a call of its own: {log:?}");
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
    assert_eq!(
        described[1]["deps"][0],
        serde_json::json!({"on": "a", "need": "exists", "goes_with": false, "deleted_after": false})
    );
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
