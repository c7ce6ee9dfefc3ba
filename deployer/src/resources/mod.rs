//! One module per AWS resource kind, each implementing [`Resource`]. The executor
//! (`graph.rs`) decides what to do from what `observe` says; resources never decide whether to
//! create. `stack.rs` lists the resources of a stack.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::Clients;
use crate::error::{Error, Result};
use crate::ui::{Event, Reporter};

pub mod account_role;
pub mod api_key;
pub mod apigw;
pub mod ec2;
pub mod flow_log;
pub mod function;
pub mod iam_role;
pub mod log_group;
pub mod permission;
pub mod rest_api;
pub mod route_table;
pub mod security_group;
pub mod stage;
pub mod subnet;
pub mod table;
pub mod usage_plan;
pub mod vpc;
pub mod vpc_endpoint;
pub mod zones;

/// Tag keys every resource carries, set in the create call itself.
pub const TAG_STACK: &str = "movies-stack:stack";
pub const TAG_RESOURCE: &str = "movies-stack:resource";

/// What a resource hands to its dependents and to the stack outputs: `id`, `arn`, `name`, ...
pub type Outputs = BTreeMap<String, String>;

/// The outputs of every resource finished so far, keyed by resource id.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub map: HashMap<String, Outputs>,
    /// For `plan` / `status` / `down`: a dependency may not exist. A value sent to AWS is then
    /// never made up: [`Inputs::get`] answers [`Error::MissingDependency`] (the dependent lives
    /// in what does not exist, so it is missing too). Only a value that is merely compared may
    /// read as "(known after apply)" ([`Inputs::desired`]), like Terraform's.
    pub lenient: bool,
}

/// How a desired value that depends on a resource still to be created reads in a diff.
pub const UNKNOWN: &str = "(known after apply)";

impl Inputs {
    pub fn lenient() -> Self {
        Inputs { map: HashMap::new(), lenient: true }
    }

    /// The output `key` of resource `resource`, for a call to AWS. The executor runs a resource
    /// after its dependencies, so a missing value is a bug in `deps()`, or, in lenient mode, a
    /// dependency that does not exist: [`Error::MissingDependency`], never a placeholder.
    pub fn get(&self, resource: &str, key: &str) -> Result<&str> {
        match self.try_get(resource, key) {
            Some(v) => Ok(v),
            None if self.lenient => Err(Error::MissingDependency { resource: resource.to_string() }),
            None => Err(Error::other(format!(
                "internal: output `{key}` of `{resource}` is not available (missing dependency?)"
            ))),
        }
    }

    /// The output `key` of `resource`, for a desired value that is only compared with the live
    /// one (never sent to AWS): in lenient mode, [`UNKNOWN`] when the dependency does not exist.
    pub fn desired(&self, resource: &str, key: &str) -> Result<&str> {
        match self.get(resource, key) {
            Err(Error::MissingDependency { .. }) => Ok(UNKNOWN),
            other => other,
        }
    }

    pub fn try_get(&self, resource: &str, key: &str) -> Option<&str> {
        self.map.get(resource).and_then(|o| o.get(key)).map(String::as_str)
    }

    pub fn insert(&mut self, resource: &str, outputs: Outputs) {
        self.map.insert(resource.to_string(), outputs);
    }
}

/// One field that differs between the desired and the live resource.
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

/// Compare one field; push a change when it differs.
pub fn compare<T: PartialEq + std::fmt::Debug>(changes: &mut Vec<Change>, field: &str, desired: T, live: T) {
    if desired != live {
        changes.push(Change::update(field, format!("{desired:?}"), format!("{live:?}")));
    }
}

/// What `observe` found.
#[derive(Debug, Clone)]
pub enum Observed {
    Missing,
    Present { outputs: Outputs, changes: Vec<Change> },
}

/// Everything resources need: the clients, the stack's identity, progress, and the API Gateway
/// write lock.
pub struct Ctx {
    pub aws: Clients,
    pub stack: String,
    pub account_id: String,
    pub reporter: Arc<dyn Reporter>,
    /// API Gateway's control plane throttles hard (CreateDeployment 1/5 s, UpdateUsagePlan
    /// 1/20 s, all others 10 rps total): every API Gateway write holds this lock.
    pub apigw_writes: tokio::sync::Mutex<()>,
    pub timeouts: Timeouts,
    /// Turns true on Ctrl-C (`up`, `down`): nothing new starts, and waits stop waiting.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    /// IAM role trust/permissions becoming visible to Lambda / API Gateway.
    pub iam_propagation: Duration,
    /// Lambda State / LastUpdateStatus, DynamoDB ACTIVE, PITR enabling.
    pub resource_ready: Duration,
    /// API Gateway TooManyRequestsException.
    pub throttling: Duration,
    /// Lambda VPC ENIs releasing (down).
    pub eni_release: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            iam_propagation: Duration::from_secs(300),
            resource_ready: Duration::from_secs(600),
            throttling: Duration::from_secs(300),
            eni_release: Duration::from_secs(45 * 60),
        }
    }
}

impl Ctx {
    /// An ARN of this account and region, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`: AWS
    /// defines it from the resource's name, so it is known before the resource exists.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            crate::aws::partition(&self.aws.region),
            self.aws.region,
            self.account_id
        )
    }

    /// The two ownership tags for `resource`, as (key, value) pairs.
    pub fn tags(&self, resource: &str) -> Vec<(String, String)> {
        vec![(TAG_STACK.to_string(), self.stack.clone()), (TAG_RESOURCE.to_string(), resource.to_string())]
    }

    pub fn tag_map(&self, resource: &str) -> HashMap<String, String> {
        self.tags(resource).into_iter().collect()
    }

    /// Whether a tag set marks the resource as ours: (stack tag matches, resource tag matches).
    pub fn owns<'a>(&self, resource: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let mut stack = false;
        let mut id = false;
        for (k, v) in tags {
            stack |= k == TAG_STACK && v == self.stack;
            id |= k == TAG_RESOURCE && v == resource;
        }
        stack && id
    }

    /// The error for a same-named resource that is not ours: never adopted, never touched.
    pub fn not_ours(&self, what: &str, name: &str) -> Error {
        Error::other(format!(
            "{what} `{name}` already exists but is not tagged {TAG_STACK}={}: it belongs to something else. \
             Rename ours in the config, or tag it {TAG_STACK}={} only if it really is part of this stack",
            self.stack, self.stack
        ))
    }

    /// A same-named resource that is not ours: if a CloudFormation (e.g. CDK) stack owns it, say
    /// which; otherwise [`Ctx::not_ours`].
    pub async fn foreign(&self, what: &str, name: &str) -> Error {
        match self.check_cloudformation_owner(what, name).await {
            Err(owned_by_cloudformation) => owned_by_cloudformation,
            Ok(()) => self.not_ours(what, name),
        }
    }

    pub fn progress(&self, resource: &str, message: impl Into<String>) {
        self.reporter.event(Event::Progress { id: resource.to_string(), message: message.into() });
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.reporter.event(Event::Warning(message.into()));
    }

    /// Before creating a resource with a fixed name: is that name already owned by a
    /// CloudFormation (e.g. CDK) stack? Then creating ours would fight it: say which stack.
    pub async fn check_cloudformation_owner(&self, what: &str, physical_name: &str) -> Result<()> {
        use crate::aws::AwsResultExt;
        let res = self
            .aws
            .cloudformation
            .describe_stack_resources()
            .physical_resource_id(physical_name)
            .send()
            .await
            .aws("CloudFormation", "DescribeStackResources");
        match res {
            Ok(out) => match cloudformation_owner(out.stack_resources(), physical_name) {
                Some(r) => Err(Error::other(format!(
                    "{what} `{physical_name}` is owned by CloudFormation stack `{}` (logical id `{}`); \
                     delete that stack or choose another name in the config",
                    r.stack_name().unwrap_or("?"),
                    r.logical_resource_id().unwrap_or("?")
                ))),
                None => Ok(()),
            },
            // "Stack for <name> does not exist": nobody owns it.
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) if e.aws().is_some_and(|a| a.code.as_deref() == Some("ValidationError")) => Ok(()),
            Err(e) => {
                // The check is advisory: without cloudformation:DescribeStackResources we say so
                // and go on rather than block the deploy.
                self.warn(format!("could not check CloudFormation ownership of {what} `{physical_name}`: {e}"));
                Ok(())
            }
        }
    }
}

/// The CloudFormation resource that owns `physical_name`, among the DescribeStackResources answer
/// for it. That answer lists EVERY resource of the owning stack, and keeps deleted stacks for 90
/// days (CloudFormation API reference): match the physical id, and skip what is deleted
/// (`DELETE_COMPLETE`) or was left behind by a delete (`DELETE_SKIPPED`, no longer managed).
pub fn cloudformation_owner<'a>(
    resources: &'a [aws_sdk_cloudformation::types::StackResource],
    physical_name: &str,
) -> Option<&'a aws_sdk_cloudformation::types::StackResource> {
    use aws_sdk_cloudformation::types::ResourceStatus;
    resources.iter().find(|r| {
        r.physical_resource_id() == Some(physical_name)
            && !matches!(r.resource_status(), Some(ResourceStatus::DeleteComplete | ResourceStatus::DeleteSkipped))
    })
}

/// One resource of the stack. `observe` reads only; `create`, `update` and `delete` are the only
/// functions that mutate. Outputs (ids, ARNs) flow to dependents through the executor.
#[async_trait]
pub trait Resource: Send + Sync {
    /// The logical id, unique in the stack, also the value of the `movies-stack:resource` tag.
    fn id(&self) -> &str;
    /// The kind, for people: "VPC", "usage plan", ...
    fn kind(&self) -> &'static str;
    /// Ids of the resources whose outputs this one needs.
    fn deps(&self) -> Vec<String>;
    /// Find the live resource and compare it with the desired one. Pure reads.
    async fn observe(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Observed>;
    /// Create it, with its tags in the create call. Ends by returning its outputs.
    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Outputs>;
    /// Bring the live resource to the desired state for the given changes.
    async fn update(&self, ctx: &Ctx, inputs: &Inputs, live: &Outputs, changes: &[Change]) -> Result<Outputs>;
    /// Delete it. Deleting something already gone succeeds.
    async fn delete(&self, ctx: &Ctx, live: &Outputs) -> Result<()>;
}

/// Build an [`Outputs`] from pairs.
pub fn outputs<const N: usize>(pairs: [(&str, String); N]) -> Outputs {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{ResourceStatus, StackResource};

    fn resource(stack: &str, logical: &str, physical: &str, status: ResourceStatus) -> StackResource {
        StackResource::builder()
            .stack_name(stack)
            .logical_resource_id(logical)
            .physical_resource_id(physical)
            .resource_type("AWS::Test::Thing")
            .resource_status(status)
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .build()
    }

    #[test]
    fn the_owner_is_the_clashing_resource_of_a_live_stack() {
        // DescribeStackResources by physical id answers every resource of the owning stack.
        let live = [
            resource("cdk", "Vpc", "vpc-1", ResourceStatus::CreateComplete),
            resource("cdk", "Table", "demo_table", ResourceStatus::UpdateComplete),
        ];
        assert_eq!(cloudformation_owner(&live, "demo_table").and_then(|r| r.logical_resource_id()), Some("Table"));
        assert!(cloudformation_owner(&live, "other_table").is_none());
        // A deleted stack is kept for 90 days; a retained resource is no longer managed.
        let gone = [
            resource("old", "Table", "demo_table", ResourceStatus::DeleteComplete),
            resource("older", "Table", "demo_table", ResourceStatus::DeleteSkipped),
        ];
        assert!(cloudformation_owner(&gone, "demo_table").is_none());
    }

    #[test]
    fn lenient_inputs_never_make_up_a_value_for_a_call() {
        let mut inputs = Inputs::lenient();
        assert!(matches!(inputs.get("function", "name"), Err(Error::MissingDependency { .. })));
        assert_eq!(inputs.desired("function", "arn").unwrap(), UNKNOWN);
        inputs.insert("function", outputs([("name", "f".to_string())]));
        assert_eq!(inputs.get("function", "name").unwrap(), "f");
        let strict = Inputs::default();
        assert!(strict.get("function", "name").unwrap_err().to_string().starts_with("internal:"));
        assert!(strict.desired("function", "arn").is_err(), "outside lenient mode a missing value is a bug");
    }
}
