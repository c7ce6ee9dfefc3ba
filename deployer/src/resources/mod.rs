//! One module per AWS resource kind, each implementing [`Resource`]. The executor (`graph/`)
//! decides what to do from what `observe` finds; resources never decide whether to create.
//! `stack.rs` is the registry: the resources of a stack, in one list.
//!
//! Typed from end to end: a resource's id ([`Id`]) carries the type of what it hands to its
//! dependents (its `Live` state), so `inputs.get(function::ID)` is a `&LiveFunction` checked by
//! the compiler, and a resource's `update` receives its own typed changes.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::cfn::CfnResource;
pub use crate::ctx::Ctx;
use crate::error::{Error, Result};
pub use crate::grant::{Condition, Grant, Scope};
pub use movies_stack_kinds::Kind;

pub mod account_role;
pub mod alarm;
pub mod api_key;
pub mod apigw;
pub mod ec2;
pub mod flow_log;
pub mod function;
pub mod function_alias;
pub mod iam_role;
pub mod log_group;
pub mod metrics;
pub mod permission;
pub mod rest_api;
pub mod route_table;
pub mod security_group;
pub mod stage;
pub mod stage_access_logs;
pub mod subnet;
pub mod table;
pub mod usage_plan;
pub mod vpc;
pub mod vpc_endpoint;
pub mod web_acl;
pub mod xray;
pub mod zones;

pub use crate::events::FieldChange;
pub use crate::ids::{Id, Name, TAG_RESOURCE, TAG_STACK};

/// What a dependency needs of the resource it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Its identifiers (ids, ARNs): known right after its create call returns.
    Exists,
    /// That it is ready to serve (a function `Active`, not `Pending`).
    Ready,
}

/// How a dependency orders the deletions of `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// The dependent is deleted first, then what it depends on (the default).
    DependentFirst,
    /// AWS deletes the dependent together with what it depends on (a function's resource-based
    /// policy statement goes with the function). What it depends on is deleted without waiting
    /// for it; the dependent makes no call of its own when both go, and is reported deleted once
    /// its dependency is.
    GoesWith,
    /// Deleting what it depends on releases the dependent's hold on it, and deleting the dependent
    /// first would cost more: the dependency is deleted first, then the dependent, with a call of
    /// its own (DeleteStage drops the stage from every usage plan, so a plan is deleted without
    /// the UpdateUsagePlan, limited to 1 request / 20 s, that unbinding it first would take).
    DependencyFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dep {
    pub on: Name,
    pub need: Need,
    pub teardown: Teardown,
}

impl Dep {
    /// Needs `id`'s identifiers.
    pub fn on<T>(id: Id<T>) -> Dep {
        Dep { on: id.name(), need: Need::Exists, teardown: Teardown::DependentFirst }
    }

    /// Needs `id` ready. No resource of this stack needs another one ready (the API needs only
    /// the function's ARN), so only the executor's tests use it today.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn ready<T>(id: Id<T>) -> Dep {
        Dep { on: id.name(), need: Need::Ready, teardown: Teardown::DependentFirst }
    }

    /// AWS deletes this resource with `id` ([`Teardown::GoesWith`]).
    pub fn goes_with(self) -> Dep {
        Dep { teardown: Teardown::GoesWith, ..self }
    }

    /// Deleted after `id`, whose deletion releases it ([`Teardown::DependencyFirst`]).
    pub fn deleted_after(self) -> Dep {
        Dep { teardown: Teardown::DependencyFirst, ..self }
    }
}

/// The live state of every resource known so far, by name: what dependents read.
#[derive(Clone, Default)]
pub struct LiveStates {
    map: HashMap<Name, Arc<dyn Any + Send + Sync>>,
    /// For `plan` / `status` / `down`: a dependency may not exist. [`LiveStates::get`] then answers
    /// [`Error::MissingDependency`]: never a made-up value, never a call.
    lenient: bool,
}

impl fmt::Debug for LiveStates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self.map.keys().map(Name::to_string).collect();
        names.sort();
        f.debug_struct("LiveStates").field("present", &names).field("lenient", &self.lenient).finish()
    }
}

impl LiveStates {
    pub fn lenient() -> Self {
        LiveStates { map: HashMap::new(), lenient: true }
    }

    /// The live state of `id`. The executor runs a resource after its dependencies, so a missing
    /// one is a bug in `deps()`, or (lenient) a dependency that does not exist.
    pub fn get<T: Any + Send + Sync>(&self, id: Id<T>) -> Result<&T> {
        match self.map.get(&id.name()) {
            Some(v) => v
                .downcast_ref::<T>()
                .ok_or_else(|| Error::other(format!("internal: the state of `{id}` has another type"))),
            None if self.lenient => Err(Error::MissingDependency { resource: id.to_string() }),
            None => Err(Error::other(format!("internal: `{id}` is not available (missing dependency?)"))),
        }
    }

    #[cfg(test)]
    pub fn insert<T: Any + Send + Sync>(&mut self, id: Id<T>, live: T) {
        self.map.insert(id.name(), Arc::new(live));
    }

    pub fn insert_any(&mut self, name: Name, live: Arc<dyn Any + Send + Sync>) {
        self.map.insert(name, live);
    }

    /// The state of `name`, erased (for the executor and the commands' outputs).
    pub fn get_any(&self, name: Name) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.map.get(&name)
    }

    pub fn remove(&mut self, name: Name) {
        self.map.remove(&name);
    }

    pub fn contains(&self, name: Name) -> bool {
        self.map.contains_key(&name)
    }
}

/// A resource's typed change: what its `update` matches on, and how it reads.
pub trait KindChange: fmt::Debug + Clone + Send + Sync + 'static {
    fn show(&self) -> FieldChange;
}

/// The generic change of resources whose every change is handled the same way (or that have
/// none): the displayed [`FieldChange`] itself.
impl KindChange for FieldChange {
    fn show(&self) -> FieldChange {
        self.clone()
    }
}

/// One resource of the stack. `observe` reads only; `create`, `update` and `delete` are the only
/// functions that mutate. What a resource hands to its dependents is its `Live` state.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The live resource as far as the stack cares: found by `observe`, returned by `create` and
    /// `update`, read by dependents through [`LiveStates::get`].
    type Live: fmt::Debug + Clone + Send + Sync + 'static;
    /// One difference between desired and live.
    type Change: KindChange;

    /// The typed id, unique in the stack.
    fn id(&self) -> Id<Self::Live>;
    /// Its kind: `graph --output json` emits its id, people read its label ("VPC", "usage plan").
    fn kind(&self) -> Kind;
    /// Its name in AWS when the config fixes it (roles, log groups, the table, the function, the
    /// REST API, usage plans, keys, alarms, the web ACL); `None` where AWS assigns the id (EC2).
    /// `graph --output json` shows it: the tests find leftovers by it, tags or not.
    fn aws_name(&self) -> Option<String> {
        None
    }
    /// What the tool's IAM policy must allow to manage it (`movies-stack iam-policy`), scoped to
    /// this stack's names and tags: every call its functions make, and nothing else. Grants of
    /// several resources that share a Sid are merged into one statement.
    fn grants(&self, scope: &Scope) -> Vec<Grant>;
    /// The resources whose state this one needs, and how much of it.
    fn deps(&self) -> Vec<Dep> {
        Vec::new()
    }
    /// How many AWS calls `create` makes one after another at the least (no waits counted): the
    /// benchmark's lower bound of a cold `up` follows from it and the graph.
    fn create_rounds(&self) -> u32;
    /// How many AWS calls `delete` makes one after another at the least, when nothing is left
    /// to wait for (a route table is disassociated, then deleted): `down`'s lower bound follows
    /// from it and the graph.
    fn delete_rounds(&self) -> u32 {
        1
    }
    /// Find the live resource by its own identity (tags, fixed name). Reads only, shared reads
    /// through `ctx.once` (one sweep per run); never needs another resource's state.
    async fn observe(&self, ctx: &Ctx) -> Result<Option<Self::Live>>;
    /// What differs, given the dependencies' states. Pure. In lenient mode, a missing dependency
    /// is [`Error::MissingDependency`] (the comparison waits for it to exist).
    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &Self::Live) -> Result<Vec<Self::Change>>;
    /// Create it, with its tags in the create call.
    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<Self::Live>;
    /// Bring the live resource to the desired state for the given changes.
    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &Self::Live,
        changes: &[Self::Change],
    ) -> Result<Self::Live>;
    /// Delete it. Deleting something already gone succeeds.
    async fn delete(&self, ctx: &Ctx, live: &Self::Live) -> Result<()>;
    /// False when the config turns it off (`[waf] enabled = false`, ...): it stays in the graph so
    /// that `up` deletes what an earlier config made (dependents first, before anything else
    /// changes), `down` still finds it, and `status` shows it as `off`. Nothing that is wanted
    /// may depend on it.
    fn wanted(&self) -> bool {
        true
    }
    /// Whether `update` replaces it by itself when a change needs a replacement (delete, then
    /// create: for what nothing else holds on to, like a flow log). Otherwise the executor refuses
    /// a replacement and says how to do it.
    fn replaces_itself(&self) -> bool {
        false
    }
    /// Wait until it is ready to serve, after `create` / `update` (only run when a dependent
    /// needs it ready).
    async fn wait_ready(&self, _ctx: &Ctx, _live: &Self::Live) -> Result<()> {
        Ok(())
    }
    /// Health, shown by `status`: (what, value).
    fn health(&self, _live: &Self::Live) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The stack outputs this resource provides: (name, value). Never a secret.
    fn outputs(&self, _ctx: &Ctx, _live: &Self::Live) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// How the live resource reads in CloudFormation (`movies-stack export`): the properties the
    /// stack sets, other resources by reference, and the identifier an IMPORT needs, or why
    /// CloudFormation cannot import it. Only asked of a resource that is in sync with the config.
    fn export(&self, ctx: &Ctx, live: &Self::Live) -> Vec<CfnResource>;
}

/// Only for a request that tags what it creates as this stack's (the tags ride on the create call).
pub fn request_tagged(s: &Scope) -> Condition {
    Condition::equals(format!("aws:RequestTag/{TAG_STACK}"), &s.config.stack)
}

/// Only on what is tagged as this stack's.
pub fn resource_tagged(s: &Scope) -> Condition {
    Condition::equals(format!("aws:ResourceTag/{TAG_STACK}"), &s.config.stack)
}

/// At most one live resource may carry a resource tag; more is a leftover of something we did
/// not do (a copy made by hand?) and is reported, never guessed at.
pub fn at_most_one<T>(mut found: Vec<T>, what: &str, resource: Name) -> Result<Option<T>> {
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(Error::other(format!(
            "found {n} {what}s tagged {TAG_RESOURCE}={resource} in this stack; expected one. Delete the extra ones"
        ))),
    }
}

/// Compare one field; push a generic change when it differs.
pub fn compare<T: PartialEq + fmt::Debug>(changes: &mut Vec<FieldChange>, field: &str, desired: T, live: T) {
    if desired != live {
        changes.push(FieldChange::update(field, format!("{desired:?}"), format!("{live:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[derive(Debug, PartialEq)]
    struct LiveThing(u32);
    const THING: Id<LiveThing> = Id::new("thing");
    const OTHER: Id<u32> = Id::indexed("other", 1);

    #[test]
    fn inputs_are_typed_and_lenient_ones_never_make_up_a_value() {
        let mut inputs = LiveStates::lenient();
        assert!(matches!(inputs.get(THING), Err(Error::MissingDependency { .. })));
        inputs.insert_any(THING.name(), Arc::new(LiveThing(7)));
        assert_eq!(inputs.get(THING).unwrap(), &LiveThing(7));
        let strict = LiveStates::default();
        assert!(strict.get(OTHER).unwrap_err().to_string().starts_with("internal:"));
        assert_eq!(OTHER.to_string(), "other-1");
    }
}

/// For the resources' test tables of drift cases.
#[cfg(test)]
pub mod test_support {
    /// A change made to a live state, as a plain function.
    pub type Edit<T> = fn(&mut T);
    /// A change made to a live state, as a closure.
    pub type BoxedEdit<T> = Box<dyn Fn(&mut T)>;
}
