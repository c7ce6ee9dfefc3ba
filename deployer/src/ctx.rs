//! What every resource works with: the clients, the stack's name, who we are, progress, the
//! timeouts, Ctrl-C, the reads shared by the run's one discovery sweep, and API Gateway's pacing.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::aws::{AwsResultExt, Clients, Identity};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ids::{Name, TAG_RESOURCE, TAG_STACK};
use crate::pacer::Pacer;
use crate::ui::Printer;

/// One shared read (or change): a `OnceCell<Arc<T>>`, by key and type.
type Shared = Arc<dyn Any + Send + Sync>;

pub struct Ctx {
    pub aws: Clients,
    pub stack: String,
    pub printer: Arc<dyn Printer>,
    pub timeouts: Timeouts,
    /// Turns true on Ctrl-C (`up`, `down`): nothing new starts, and waits stop waiting.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// API Gateway's control-plane quotas, spent as fast as they allow.
    pub apigw: Pacer,
    identity: OnceCell<Identity>,
    /// Reads (and changes) shared by several resources, one per run: key → `OnceCell<Arc<T>>`.
    shared: Mutex<HashMap<(Cow<'static, str>, TypeId), Shared>>,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    /// IAM role trust/permissions becoming visible to Lambda / API Gateway / EC2.
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
    /// Every value resolved: a context is not changed once built.
    pub fn new(
        aws: Clients,
        stack: String,
        printer: Arc<dyn Printer>,
        stop: tokio::sync::watch::Receiver<bool>,
        timeouts: Timeouts,
        apigw: Pacer,
    ) -> Ctx {
        Ctx {
            aws,
            stack,
            printer,
            timeouts,
            stop,
            apigw,
            identity: OnceCell::new(),
            shared: Mutex::new(HashMap::new()),
        }
    }

    /// STS GetCallerIdentity, once. It needs no permission, so its failure is about the
    /// credentials, the region or the endpoint.
    pub async fn identity(&self) -> Result<&Identity> {
        self.identity.get_or_try_init(|| self.aws.caller()).await
    }

    /// The account id. Known once [`Ctx::identity`] has answered, which every command awaits
    /// (concurrently with the discovery sweep) before it compares or changes anything.
    pub fn account_id(&self) -> &str {
        match self.identity.get() {
            Some(id) => &id.account,
            None => panic!("internal: the account id was needed before STS GetCallerIdentity answered"),
        }
    }

    /// A read several resources need (all the stack's subnets, every REST API...), made once per
    /// run by whichever asks first; the others wait for its answer. It is a snapshot of the start
    /// of the run: the discovery sweep. Also a change several resources would each make (deleting
    /// a network interface that both a subnet and the security group hold). A failure is not
    /// remembered: the next to ask tries again.
    pub async fn once<T, F, Fut>(&self, key: impl Into<Cow<'static, str>>, read: F) -> Result<Arc<T>>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let cell: Arc<OnceCell<Arc<T>>> = {
            let mut shared = self.shared.lock().expect("shared reads lock");
            let entry = shared
                .entry((key.into(), TypeId::of::<T>()))
                .or_insert_with(|| Arc::new(OnceCell::<Arc<T>>::new()) as Shared)
                .clone();
            entry.downcast::<OnceCell<Arc<T>>>().expect("a shared read's cell has the type of its key")
        };
        cell.get_or_try_init(|| async { read().await.map(Arc::new) }).await.cloned()
    }

    /// Forget every shared read: the next ones read AWS again (a new sweep).
    pub fn forget_shared(&self) {
        self.shared.lock().expect("shared reads lock").clear();
    }

    /// A shared read already made (by an `observe`, in the sweep), for pure code (`diff`).
    pub fn already<T: Send + Sync + 'static>(&self, key: &'static str) -> Result<Arc<T>> {
        let shared = self.shared.lock().expect("shared reads lock");
        shared
            .get(&(Cow::Borrowed(key), TypeId::of::<T>()))
            .and_then(|cell| cell.clone().downcast::<OnceCell<Arc<T>>>().ok())
            .and_then(|cell| cell.get().cloned())
            .ok_or_else(|| Error::other(format!("internal: the shared read `{key}` was not made before it was needed")))
    }

    /// An ARN of this account and region, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`: AWS
    /// defines it from the resource's name, so it is known before the resource exists.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            crate::aws::partition(&self.aws.region),
            self.aws.region,
            self.account_id()
        )
    }

    /// The two ownership tags for `resource`, as (key, value) pairs.
    pub fn tags(&self, resource: Name) -> Vec<(String, String)> {
        vec![(TAG_STACK.to_string(), self.stack.clone()), (TAG_RESOURCE.to_string(), resource.to_string())]
    }

    pub fn tag_map(&self, resource: Name) -> HashMap<String, String> {
        self.tags(resource).into_iter().collect()
    }

    /// Whether a tag set marks the resource as ours: stack tag and resource tag both match.
    pub fn owns<'a>(&self, resource: Name, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        self.owner(tags) == Some(resource.to_string())
    }

    /// The resource tag of a tag set carrying our stack tag: which of our resources this is.
    pub fn owner<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
        let mut stack = false;
        let mut id = None;
        for (k, v) in tags {
            stack |= k == TAG_STACK && v == self.stack;
            if k == TAG_RESOURCE {
                id = Some(v.to_string());
            }
        }
        id.filter(|_| stack)
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

    /// A step of the work on `id` (a resource's name, or `lock`), in words.
    pub fn progress(&self, id: impl Into<Name>, message: impl Into<String>) {
        self.printer.event(Event::Progress { id: id.into(), message: message.into() });
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.printer.event(Event::Warning(message.into()));
    }

    pub fn info(&self, message: impl Into<String>) {
        self.printer.event(Event::Info(message.into()));
    }

    /// Before creating a resource with a fixed name: is that name already owned by a
    /// CloudFormation (e.g. CDK) stack? Then creating ours would fight it: say which stack.
    pub async fn check_cloudformation_owner(&self, what: &str, physical_name: &str) -> Result<()> {
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
                     delete that stack or choose another name in the config (a stack handed to CloudFormation \
                     with `movies-stack export` is CloudFormation's to manage now)",
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

#[cfg(test)]
impl Ctx {
    /// A context for unit tests: clients pointed at a closed port (no call may succeed), a
    /// known identity, events recorded.
    pub async fn for_tests(stopped: bool) -> Arc<Ctx> {
        let (tx, stop) = tokio::sync::watch::channel(stopped);
        std::mem::forget(tx); // keep the channel open for the whole test
        let settings = crate::aws::AwsSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            dummy_credentials: true,
            quota_speedup: 1.0,
            ..Default::default()
        };
        let ctx = Ctx::new(
            Clients::new(&settings, None).await.expect("clients"),
            "t".into(),
            Arc::new(crate::ui::Recorder::default()),
            stop,
            Timeouts::default(),
            Pacer::default(),
        );
        ctx.identity
            .set(Identity { account: "123456789012".into(), arn: "arn:aws:iam::123456789012:user/t".into() })
            .ok();
        Arc::new(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{ResourceStatus, StackResource};
    use std::sync::atomic::{AtomicU32, Ordering};

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

    #[tokio::test]
    async fn a_shared_read_is_made_once_whoever_asks() {
        let ctx = Ctx::for_tests(false).await;
        let calls = Arc::new(AtomicU32::new(0));
        let read = || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, Error>(vec![1, 2, 3])
            }
        };
        let (a, b) = tokio::join!(ctx.once("numbers", read), ctx.once("numbers", read));
        assert_eq!(*a.unwrap(), vec![1, 2, 3]);
        assert_eq!(*b.unwrap(), vec![1, 2, 3]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Another key is another read.
        ctx.once("letters", || async { Ok::<_, Error>("abc") }).await.unwrap();
        assert_eq!(ctx.arn("lambda", "function:f"), "arn:aws:lambda:us-east-1:123456789012:function:f");
    }

    #[tokio::test]
    async fn ownership_needs_both_tags() {
        let ctx = Ctx::for_tests(false).await;
        let vpc = Name::of("vpc");
        assert!(ctx.owns(vpc, [(TAG_STACK, "t"), (TAG_RESOURCE, "vpc")]));
        assert!(!ctx.owns(vpc, [(TAG_STACK, "other"), (TAG_RESOURCE, "vpc")]));
        assert!(!ctx.owns(vpc, [(TAG_STACK, "t"), (TAG_RESOURCE, "subnet-0")]));
        assert_eq!(ctx.owner([(TAG_RESOURCE, "subnet-0"), (TAG_STACK, "t")]).as_deref(), Some("subnet-0"));
    }
}
