//! The Lambda function: `provided.al2023` + `bootstrap`, in the VPC's private subnets, X-Ray
//! active, JSON logs to its pre-created log group, and optionally reserved concurrency. Code is
//! uploaded only when its SHA-256 differs from the live `CodeSha256` (the artifact is built
//! deterministically).
//!
//! Reserved concurrency is not part of the function's configuration: PutFunctionConcurrency /
//! DeleteFunctionConcurrency set it, GetFunction reports it (`Concurrency`). It may change while
//! an update is in progress, but not while the function is Pending: then "any invocations or
//! other API actions that operate on the function will fail" (Lambda developer guide, "Lambda
//! function states"), as 409 ResourceConflictException "... The function is currently in the
//! following state: Pending"; terraform's `resourceFunctionCreate` waits for Active before
//! PutFunctionConcurrency, and so do we. Whether the account can spare it is checked before the
//! run changes anything (`commands/preflight.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionConfiguration, LastUpdateStatus, LogFormat, LoggingConfig, Runtime, State,
    TracingConfig, TracingMode, VpcConfig,
};
use aws_smithy_types::Blob;

use super::{
    Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, compare, iam_role, security_group,
    subnet,
};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Codes, Error, ErrorKind, Result};
use crate::wait::{backoff, retry, wait_until};
use serde_json::{Value, json};

pub const ID: Id<LiveFunction> = Id::new("function");

/// Codes only the function's calls meet: the account's 75 GB of code storage (Lambda quotas).
const CODES: &Codes = &[("CodeStorageExceededException", ErrorKind::Quota)];
pub const RUNTIME: &str = "provided.al2023";
pub const HANDLER: &str = "bootstrap";
/// `export`'s template parameters for the code: CloudFormation reads a function's code from S3.
pub const CODE_BUCKET: &str = "CodeS3Bucket";
pub const CODE_KEY: &str = "CodeS3Key";
const TRACING: &str = "Active";
const LOG_FORMAT: &str = "JSON";

/// The deployment package (built or read by `package.rs`).
pub use crate::package::Artifact;

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    /// "arm64" | "x86_64"
    pub architecture: String,
    pub memory_mb: i32,
    pub timeout_seconds: i32,
    /// How many subnets (`subnet-0` .. `subnet-{n-1}`) the function is attached to.
    pub subnets: u8,
    /// The table it writes to (`TABLE_NAME`), and its log group: by name.
    pub table_name: String,
    pub log_group: String,
    pub artifact: Arc<Artifact>,
    /// Concurrent executions reserved for it; `None`: none.
    pub reserved_concurrency: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub format: String,
    pub group: String,
}

/// The configuration part of a function (what UpdateFunctionConfiguration sets), desired or live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    pub runtime: String,
    pub handler: String,
    pub memory_mb: i32,
    pub timeout_seconds: i32,
    pub role_arn: String,
    pub environment: BTreeMap<String, String>,
    pub tracing: String,
    pub subnet_ids: BTreeSet<String>,
    pub security_group_ids: BTreeSet<String>,
    /// Live: `None` when the service does not report it (see [`diff`]).
    pub logging: Option<Logging>,
}

/// The function as the stack wants it, resolved from the config and the dependencies' outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub config: FunctionConfig,
    pub architecture: String,
    pub code_sha256: String,
    pub reserved_concurrency: Option<i32>,
}

/// The live function, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFunction {
    pub name: String,
    pub arn: String,
    /// `Pending`, `Active`, `Failed`, `Inactive`.
    pub state: String,
    pub state_reason: String,
    /// `InProgress`, `Successful`, `Failed` (empty when not reported).
    pub last_update_status: String,
    pub config: FunctionConfig,
    pub architecture: String,
    pub code_sha256: String,
    /// GetFunction's `Concurrency`: `None` when nothing is reserved.
    pub reserved_concurrency: Option<i32>,
}

/// One difference of the function, by the call that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionChange {
    /// State `Failed`: Lambda's documented remedy is to delete and re-create the function.
    Failed { reason: String },
    /// UpdateFunctionCode: the code or the architecture (they travel together).
    Code(FieldChange),
    /// UpdateFunctionConfiguration: everything else, in one call.
    Configuration(FieldChange),
    /// PutFunctionConcurrency, or DeleteFunctionConcurrency when none is wanted.
    Concurrency(FieldChange),
}

impl FunctionChange {
    fn is_code(&self) -> bool {
        matches!(self, FunctionChange::Code(_))
    }

    fn is_configuration(&self) -> bool {
        matches!(self, FunctionChange::Configuration(_))
    }
}

impl KindChange for FunctionChange {
    fn show(&self) -> FieldChange {
        match self {
            FunctionChange::Failed { reason } => FieldChange::replace("state", "Active", format!("Failed: {reason}")),
            FunctionChange::Code(c) | FunctionChange::Configuration(c) | FunctionChange::Concurrency(c) => c.clone(),
        }
    }
}

pub fn diff(desired: &FunctionSpec, live: &LiveFunction) -> Vec<FunctionChange> {
    let mut changes = Vec::new();
    if live.state == State::Failed.as_str() {
        changes.push(FunctionChange::Failed { reason: live.state_reason.clone() });
    }
    // `status` / `down` / `keys` build nothing: the code is not compared then.
    if !desired.code_sha256.is_empty() && desired.code_sha256 != live.code_sha256 {
        changes.push(FunctionChange::Code(FieldChange::update("code", &desired.code_sha256, &live.code_sha256)));
    }
    if desired.architecture != live.architecture {
        changes.push(FunctionChange::Code(FieldChange::update(
            "architecture",
            &desired.architecture,
            &live.architecture,
        )));
    }
    let mut config = Vec::new();
    let changes_of_config = &mut config;
    let (d, l) = (&desired.config, &live.config);
    compare(changes_of_config, "runtime", &d.runtime, &l.runtime);
    compare(changes_of_config, "handler", &d.handler, &l.handler);
    compare(changes_of_config, "memory_mb", d.memory_mb, l.memory_mb);
    compare(changes_of_config, "timeout_seconds", d.timeout_seconds, l.timeout_seconds);
    compare(changes_of_config, "role", &d.role_arn, &l.role_arn);
    compare(changes_of_config, "environment", &d.environment, &l.environment);
    compare(changes_of_config, "tracing", &d.tracing, &l.tracing);
    // Subnets and security groups only (as sets): moto reports a made-up VpcId (`vpc-123abc`),
    // and the VPC follows from the subnets anyway.
    compare(changes_of_config, "subnets", &d.subnet_ids, &l.subnet_ids);
    compare(changes_of_config, "security_groups", &d.security_group_ids, &l.security_group_ids);
    // AWS always returns LoggingConfig (default: Text, /aws/lambda/<name>); moto 5.2.5 drops it
    // on create and ignores it on update. An absent LoggingConfig is therefore "unknown", not
    // "different": otherwise every `up` against moto would call UpdateFunctionConfiguration.
    if let (Some(d), Some(l)) = (&d.logging, &l.logging) {
        compare(changes_of_config, "logging", d, l);
    }
    changes.extend(config.into_iter().map(FunctionChange::Configuration));
    if desired.reserved_concurrency != live.reserved_concurrency {
        let text = |r: Option<i32>| r.map_or("none".to_string(), |r| r.to_string());
        changes.push(FunctionChange::Concurrency(FieldChange::update(
            "reserved_concurrency",
            text(desired.reserved_concurrency),
            text(live.reserved_concurrency),
        )));
    }
    changes
}

/// The function as a FunctionConfiguration reports it (`$LATEST`, or a published version).
pub fn live_from(c: &FunctionConfiguration) -> LiveFunction {
    let vpc = c.vpc_config();
    LiveFunction {
        name: c.function_name().unwrap_or_default().to_string(),
        arn: c.function_arn().unwrap_or_default().to_string(),
        state: c.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        state_reason: c.state_reason().unwrap_or_default().to_string(),
        last_update_status: c.last_update_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        config: FunctionConfig {
            runtime: c.runtime().map(|r| r.as_str().to_string()).unwrap_or_default(),
            handler: c.handler().unwrap_or_default().to_string(),
            memory_mb: c.memory_size().unwrap_or_default(),
            timeout_seconds: c.timeout().unwrap_or_default(),
            role_arn: c.role().unwrap_or_default().to_string(),
            environment: c
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            // PassThrough is Lambda's default mode.
            tracing: c
                .tracing_config()
                .and_then(|t| t.mode())
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| TracingMode::PassThrough.as_str().to_string()),
            subnet_ids: vpc.map(|v| v.subnet_ids().iter().cloned().collect()).unwrap_or_default(),
            security_group_ids: vpc.map(|v| v.security_group_ids().iter().cloned().collect()).unwrap_or_default(),
            logging: c.logging_config().map(|l| Logging {
                format: l.log_format().map(|f| f.as_str().to_string()).unwrap_or_default(),
                group: l.log_group().unwrap_or_default().to_string(),
            }),
        },
        // x86_64 is Lambda's default when none is reported.
        architecture: c
            .architectures()
            .first()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| Architecture::X8664.as_str().to_string()),
        code_sha256: c.code_sha256().unwrap_or_default().to_string(),
        // Not in the configuration: GetFunction's `Concurrency` (see `Function::get`).
        reserved_concurrency: None,
    }
}

/// Run `op`, a call on the function (its code, configuration, versions or policy), again while
/// Lambda answers 409 ResourceConflictException (the function is Pending, or an update is in
/// progress), until `resource_ready` has passed. `what` names the wait.
pub async fn retry_while_busy<T, F, Fut>(ctx: &Ctx, id: impl Into<super::Name>, what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    retry(ctx, id, what, &[ErrorKind::Conflict], ctx.timeouts.resource_ready, backoff::LONG_STATE, op).await
}

/// Whether two configurations are the same: LoggingConfig compared only when both report it
/// (moto drops it, see [`diff`]), everything else field by field.
fn same_configuration(a: &FunctionConfig, b: &FunctionConfig) -> bool {
    let logging_same = match (&a.logging, &b.logging) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    logging_same && FunctionConfig { logging: None, ..a.clone() } == FunctionConfig { logging: None, ..b.clone() }
}

/// Whether a published version runs what `$LATEST` runs now: the same code, architecture and
/// configuration (LoggingConfig compared only when both report it, as [`diff`] does: moto drops it).
pub fn same_release(version: &LiveFunction, latest: &LiveFunction) -> bool {
    version.code_sha256 == latest.code_sha256
        && version.architecture == latest.architecture
        && same_configuration(&version.config, &latest.config)
}

/// Whether a published version runs what the config wants: `code`, and the desired
/// architecture and configuration (LoggingConfig compared only when the version reports it).
pub fn runs(version: &LiveFunction, desired: &FunctionSpec, code: &str) -> bool {
    version.code_sha256 == code
        && version.architecture == desired.architecture
        && same_configuration(&version.config, &desired.config)
}

/// A short hash of what a version runs besides its code (its configuration and architecture;
/// LoggingConfig left out, as moto does not report it), for the deploy's record.
pub fn config_hash(f: &LiveFunction) -> String {
    let c = FunctionConfig { logging: None, ..f.config.clone() };
    let text = format!("{c:?}\n{}", f.architecture);
    crate::package::sha256_hex(text.as_bytes())[..12].to_string()
}

/// What GetFunction says of a function.
struct Got {
    config: FunctionConfiguration,
    /// `None` when the caller may not lambda:ListTags (GetFunction leaves them out then).
    tags: Option<BTreeMap<String, String>>,
    reserved_concurrency: Option<i32>,
}

impl Function {
    /// The function as the stack wants it, from its dependencies' states.
    pub fn spec(&self, inputs: &LiveStates) -> Result<FunctionSpec> {
        let subnet_ids = (0..self.subnets)
            .map(|i| inputs.get(subnet::id(i)).map(|s| s.id.clone()))
            .collect::<Result<BTreeSet<_>>>()?;
        Ok(FunctionSpec {
            config: FunctionConfig {
                runtime: RUNTIME.to_string(),
                handler: HANDLER.to_string(),
                memory_mb: self.memory_mb,
                timeout_seconds: self.timeout_seconds,
                role_arn: inputs.get(iam_role::FUNCTION)?.arn.clone(),
                environment: BTreeMap::from([("TABLE_NAME".to_string(), self.table_name.clone())]),
                tracing: TRACING.to_string(),
                subnet_ids,
                security_group_ids: BTreeSet::from([inputs.get(security_group::ID)?.id.clone()]),
                logging: Some(Logging { format: LOG_FORMAT.to_string(), group: self.log_group.clone() }),
            },
            architecture: self.architecture.clone(),
            code_sha256: self.artifact.sha256_b64.clone(),
            reserved_concurrency: self.reserved_concurrency,
        })
    }

    /// GetFunction: the configuration, the tags and the reserved concurrency; `None` when the
    /// function does not exist.
    async fn get(&self, ctx: &Ctx, name: &str) -> Result<Option<Got>> {
        match ctx.aws.lambda.get_function().function_name(name).send().await.aws_with("Lambda", "GetFunction", CODES) {
            Ok(out) => {
                let config = out
                    .configuration()
                    .cloned()
                    .ok_or_else(|| Error::other(format!("GetFunction returned no configuration for `{name}`")))?;
                let tags = out.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
                let reserved_concurrency = out.concurrency().and_then(|c| c.reserved_concurrent_executions());
                Ok(Some(Got { config, tags, reserved_concurrency }))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_config(&self, ctx: &Ctx, name: &str) -> Result<FunctionConfiguration> {
        self.get(ctx, name)
            .await?
            .map(|got| got.config)
            .ok_or_else(|| Error::other(format!("Lambda function `{name}` disappeared while we waited for it")))
    }

    async fn check_ours(&self, ctx: &Ctx, arn: &str, tags: Option<BTreeMap<String, String>>) -> Result<()> {
        // GetFunction leaves Tags out when the caller may not lambda:ListTags; ask directly then,
        // so the error (if any) names the missing permission.
        let tags = match tags {
            Some(t) => t,
            None => ctx
                .aws
                .lambda
                .list_tags()
                .resource(arn)
                .send()
                .await
                .aws_with("Lambda", "ListTags", CODES)?
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        };
        if ctx.owns(ID.name(), tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Ok(())
        } else {
            Err(ctx.foreign("Lambda function", &self.name).await)
        }
    }

    /// Pending → Active after create (Lambda sets up the VPC ENIs meanwhile); Failed is final.
    async fn wait_active(&self, ctx: &Ctx) -> Result<()> {
        wait_until(ctx, ID, "the function to become Active", ctx.timeouts.resource_ready, backoff::STATE, || async {
            let c = self.get_config(ctx, &self.name).await?;
            match c.state() {
                Some(State::Pending) => Ok(None),
                Some(State::Failed) => Err(Error::other(format!(
                    "Lambda function `{}` is in state Failed: {} ({})",
                    self.name,
                    c.state_reason().unwrap_or("no reason given"),
                    c.state_reason_code().map(|r| r.as_str()).unwrap_or("no code")
                ))),
                _ => Ok(Some(())),
            }
        })
        .await
    }

    /// Before an update: UpdateFunctionCode / UpdateFunctionConfiguration fail while the function
    /// is Pending or another update is InProgress (ResourceConflictException). `live` says how it
    /// was: no call when it was idle.
    async fn wait_idle(&self, ctx: &Ctx, live: &LiveFunction) -> Result<()> {
        let busy = |state: &str, update: &str| {
            state == State::Pending.as_str() || update == LastUpdateStatus::InProgress.as_str()
        };
        if !busy(&live.state, &live.last_update_status) {
            return Ok(());
        }
        wait_until(
            ctx,
            ID,
            "the function's previous update to finish",
            ctx.timeouts.resource_ready,
            backoff::STATE,
            || async {
                let c = self.get_config(ctx, &live.name).await?;
                let now = live_from(&c);
                Ok((!busy(&now.state, &now.last_update_status)).then_some(()))
            },
        )
        .await
    }

    /// After an update: LastUpdateStatus InProgress → Successful; Failed carries the reason.
    async fn wait_updated(&self, ctx: &Ctx, name: &str) -> Result<LiveFunction> {
        wait_until(
            ctx,
            ID,
            "the function update to be Successful",
            ctx.timeouts.resource_ready,
            backoff::STATE,
            || async {
                let c = self.get_config(ctx, name).await?;
                match c.last_update_status() {
                    Some(LastUpdateStatus::InProgress) => Ok(None),
                    Some(LastUpdateStatus::Failed) => Err(Error::other(format!(
                        "updating Lambda function `{name}` failed: {} ({})",
                        c.last_update_status_reason().unwrap_or("no reason given"),
                        c.last_update_status_reason_code().map(|r| r.as_str()).unwrap_or("no code")
                    ))),
                    _ => Ok(Some(live_from(&c))),
                }
            },
        )
        .await
    }

    async fn create_function(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveFunction> {
        let spec = self.spec(inputs)?;
        let c = &spec.config;
        // Right after the role is created, Lambda may not see it yet ("The role defined for the
        // function cannot be assumed by Lambda") or not yet its permissions ("The provided
        // execution role does not have permissions to call CreateNetworkInterface on EC2 /
        // PutTraceSegments on XRAY"...): ErrorKind::Propagating, the family terraform-provider-aws
        // `retryFunctionOp` retries.
        let out = retry(
            ctx,
            ID,
            "IAM role propagation",
            &[ErrorKind::Propagating],
            ctx.timeouts.iam_propagation,
            backoff::IAM_PROPAGATION,
            || async {
                ctx.aws
                    .lambda
                    .create_function()
                    .function_name(&self.name)
                    .runtime(Runtime::from(c.runtime.as_str()))
                    .handler(&c.handler)
                    .architectures(Architecture::from(spec.architecture.as_str()))
                    .memory_size(c.memory_mb)
                    .timeout(c.timeout_seconds)
                    .role(&c.role_arn)
                    .environment(environment(c))
                    .tracing_config(tracing(c))
                    .vpc_config(vpc_config(c))
                    .set_logging_config(logging(c))
                    .set_tags(Some(ctx.tag_map(ID.name())))
                    .code(
                        aws_sdk_lambda::types::FunctionCode::builder()
                            .zip_file(Blob::new(self.artifact.zip.clone()))
                            .build(),
                    )
                    .send()
                    .await
                    .aws_with("Lambda", "CreateFunction", CODES)
            },
        )
        .await
        .map_err(|e| self.explain_zone_refusal(e, inputs))?;
        let mut live = live_from(
            &FunctionConfiguration::builder()
                .set_function_name(out.function_name().map(str::to_string))
                .set_function_arn(out.function_arn().map(str::to_string))
                .set_state(out.state().cloned())
                .set_state_reason(out.state_reason().map(str::to_string))
                .set_last_update_status(out.last_update_status().cloned())
                .set_code_sha256(out.code_sha256().map(str::to_string))
                .build(),
        );
        // What the function is now is what we asked for (the create answer carries no more).
        live.config = spec.config;
        live.architecture = spec.architecture;
        if live.name.is_empty() {
            live.name = self.name.clone();
        }
        // A crash before this call leaves the function without it: `diff` reports it, and the
        // next run's `update` sets it. Not while Pending (see the module's comment): the create
        // then waits for Active, as `wait_ready` would.
        if let Some(n) = self.reserved_concurrency {
            self.wait_active(ctx).await?;
            live.state = State::Active.as_str().to_string();
            self.put_concurrency(ctx, Some(n)).await?;
            live.reserved_concurrency = Some(n);
        }
        Ok(live)
    }

    /// PutFunctionConcurrency (`Some`) or DeleteFunctionConcurrency (`None`).
    async fn put_concurrency(&self, ctx: &Ctx, reserved: Option<i32>) -> Result<()> {
        let lambda = &ctx.aws.lambda;
        match reserved {
            Some(n) => {
                lambda
                    .put_function_concurrency()
                    .function_name(&self.name)
                    .reserved_concurrent_executions(n)
                    .send()
                    .await
                    .aws_with("Lambda", "PutFunctionConcurrency", CODES)?;
            }
            None => {
                lambda.delete_function_concurrency().function_name(&self.name).send().await.aws_with(
                    "Lambda",
                    "DeleteFunctionConcurrency",
                    CODES,
                )?;
            }
        }
        Ok(())
    }

    /// Lambda refuses subnets in some zones ("The provided subnets contain availability zone
    /// Lambda doesn't support"); `zones.rs` skips the ones reported publicly. For any other,
    /// name the subnets and their zones, and the way out.
    fn explain_zone_refusal(&self, e: Error, inputs: &LiveStates) -> Error {
        let refused = e
            .aws()
            .is_some_and(|a| a.message.to_ascii_lowercase().contains("availability zone lambda doesn't support"));
        if !refused {
            return e;
        }
        let subnets: Vec<String> = (0..self.subnets)
            .filter_map(|i| inputs.get(subnet::id(i)).ok().map(|s| format!("{} ({}) in {}", subnet::id(i), s.id, s.az)))
            .collect();
        Error::other(format!(
            "{e}. The function's subnets: {}. Choose zones that Lambda supports with `network.availability_zones` \
             in the config (zone names or IDs, e.g. [\"use1-az1\", \"use1-az2\"]), then run `movies-stack down` and \
             `up` (a subnet cannot move to another zone)",
            subnets.join(", ")
        ))
    }

    async fn update_configuration(&self, ctx: &Ctx, spec: &FunctionSpec, live: &LiveFunction) -> Result<LiveFunction> {
        let c = &spec.config;
        self.wait_idle(ctx, live).await?;
        // A new role or VPC config meets the same IAM propagation as CreateFunction; a concurrent
        // update answers ResourceConflictException (Conflict).
        let deadline = ctx.timeouts.iam_propagation.max(ctx.timeouts.resource_ready);
        retry(
            ctx,
            ID,
            "the function to accept its configuration",
            &[ErrorKind::Conflict, ErrorKind::Propagating],
            deadline,
            backoff::LONG_STATE,
            || async {
                ctx.aws
                    .lambda
                    .update_function_configuration()
                    .function_name(&self.name)
                    .runtime(Runtime::from(c.runtime.as_str()))
                    .handler(&c.handler)
                    .memory_size(c.memory_mb)
                    .timeout(c.timeout_seconds)
                    .role(&c.role_arn)
                    .environment(environment(c))
                    .tracing_config(tracing(c))
                    .vpc_config(vpc_config(c))
                    .set_logging_config(logging(c))
                    .send()
                    .await
                    .aws_with("Lambda", "UpdateFunctionConfiguration", CODES)
            },
        )
        .await?;
        self.wait_updated(ctx, &self.name).await
    }

    async fn update_code(&self, ctx: &Ctx, spec: &FunctionSpec, live: &LiveFunction) -> Result<LiveFunction> {
        self.wait_idle(ctx, live).await?;
        ctx.progress(ID, format!("uploading code {} ({})", spec.code_sha256, self.artifact.source));
        retry_while_busy(ctx, ID, "the function's previous update to finish", || async {
            ctx.aws
                .lambda
                .update_function_code()
                .function_name(&self.name)
                .zip_file(Blob::new(self.artifact.zip.clone()))
                .architectures(Architecture::from(spec.architecture.as_str()))
                .send()
                .await
                .aws_with("Lambda", "UpdateFunctionCode", CODES)
        })
        .await?;
        self.wait_updated(ctx, &self.name).await
    }
}

fn environment(c: &FunctionConfig) -> Environment {
    Environment::builder().set_variables(Some(c.environment.clone().into_iter().collect())).build()
}

fn tracing(c: &FunctionConfig) -> TracingConfig {
    TracingConfig::builder().mode(TracingMode::from(c.tracing.as_str())).build()
}

fn vpc_config(c: &FunctionConfig) -> VpcConfig {
    VpcConfig::builder()
        .set_subnet_ids(Some(c.subnet_ids.iter().cloned().collect()))
        .set_security_group_ids(Some(c.security_group_ids.iter().cloned().collect()))
        .build()
}

fn logging(c: &FunctionConfig) -> Option<LoggingConfig> {
    c.logging
        .as_ref()
        .map(|l| LoggingConfig::builder().log_format(LogFormat::from(l.format.as_str())).log_group(&l.group).build())
}

#[async_trait]
impl Resource for Function {
    type Live = LiveFunction;
    type Change = FunctionChange;

    fn id(&self) -> Id<LiveFunction> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::Function
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let actions = [
            "lambda:GetFunction",
            "lambda:CreateFunction",
            "lambda:TagResource",
            "lambda:ListTags",
            "lambda:UpdateFunctionCode",
            "lambda:UpdateFunctionConfiguration",
            "lambda:DeleteFunction",
            "lambda:PutFunctionConcurrency",
            "lambda:DeleteFunctionConcurrency",
        ];
        vec![
            // The account's Lambda concurrency, read before reserving some for the function: it
            // supports no resource-level permission.
            Grant::new("ReadWithoutResourceScope", &["lambda:GetAccountSettings"], ["*".to_string()]),
            Grant::new("TheFunction", &actions, [s.arn("lambda", &format!("function:{}", self.name))]),
        ]
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    /// Not the table: the function names it (`TABLE_NAME`), and its role's policy names its ARN.
    fn deps(&self) -> Vec<Dep> {
        let mut deps =
            vec![Dep::on(iam_role::FUNCTION), Dep::on(super::log_group::FUNCTION), Dep::on(security_group::ID)];
        deps.extend((0..self.subnets).map(|i| Dep::on(subnet::id(i))));
        deps
    }

    fn create_rounds(&self) -> u32 {
        // CreateFunction, then PutFunctionConcurrency.
        1 + u32::from(self.reserved_concurrency.is_some())
    }

    fn delete_rounds(&self) -> u32 {
        3 // detach from the VPC (the ENIs start releasing), its poll, DeleteFunction
    }

    /// Its only replacement is a function in state Failed: deleted and created again.
    fn replaces_itself(&self) -> bool {
        true
    }

    fn export(&self, ctx: &Ctx, live: &LiveFunction) -> Vec<CfnResource> {
        let c = &live.config;
        let subnets: Vec<Value> = (0..self.subnets).map(|i| cfn::reference(subnet::id(i))).collect();
        let mut properties = json!({
            "FunctionName": live.name,
            "Runtime": c.runtime,
            "Handler": c.handler,
            "Architectures": [live.architecture],
            "MemorySize": c.memory_mb,
            "Timeout": c.timeout_seconds,
            "Role": cfn::attribute(iam_role::FUNCTION, "Arn"),
            // The template cannot carry the code: CloudFormation reads it from S3.
            "Code": { "S3Bucket": { "Ref": CODE_BUCKET }, "S3Key": { "Ref": CODE_KEY } },
            "Environment": { "Variables": c.environment },
            "TracingConfig": { "Mode": c.tracing },
            "VpcConfig": {
                "SubnetIds": subnets,
                "SecurityGroupIds": [cfn::attribute(security_group::ID, "GroupId")],
            },
            "Tags": cfn::tags(&ctx.tags(ID.name())),
        });
        // In sync, the format the stack sets, into its own group (moto drops LoggingConfig).
        let format = c.logging.as_ref().map_or(LOG_FORMAT, |l| l.format.as_str());
        let group = cfn::reference(super::log_group::FUNCTION);
        properties["LoggingConfig"] = json!({ "LogFormat": format, "LogGroup": group });
        if let Some(reserved) = live.reserved_concurrency {
            properties["ReservedConcurrentExecutions"] = json!(reserved);
        }
        vec![
            CfnResource::new(ID, "AWS::Lambda::Function", properties, cfn::identifier(&[("FunctionName", &live.name)]))
                .with_parameter(CODE_BUCKET, "The S3 bucket holding the function's deployment zip")
                .with_parameter(CODE_KEY, "The key of the function's deployment zip in that bucket")
                .with_output("FunctionName", cfn::reference(ID)),
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveFunction>> {
        let Some(got) = self.get(ctx, &self.name).await? else {
            // A name a CloudFormation (e.g. CDK) stack owns would be fought over.
            ctx.check_cloudformation_owner("Lambda function", &self.name).await?;
            return Ok(None);
        };
        let live = LiveFunction { reserved_concurrency: got.reserved_concurrency, ..live_from(&got.config) };
        self.check_ours(ctx, &live.arn, got.tags).await?;
        Ok(Some(live))
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LiveFunction) -> Result<Vec<FunctionChange>> {
        Ok(diff(&self.spec(inputs)?, live))
    }

    /// Returns as soon as Lambda has the function (`Pending` while it sets up the network
    /// interfaces): what depends on it needs only its ARN. `wait_ready` waits for `Active`.
    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveFunction> {
        self.create_function(ctx, inputs).await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LiveFunction,
        changes: &[FunctionChange],
    ) -> Result<LiveFunction> {
        if changes.iter().any(|c| matches!(c, FunctionChange::Failed { .. })) {
            ctx.progress(ID, "the function is in state Failed: deleting and creating it again");
            self.delete(ctx, live).await?;
            return self.create(ctx, inputs).await;
        }
        let spec = self.spec(inputs)?;
        // All configuration fields in ONE UpdateFunctionConfiguration, all code fields in ONE
        // UpdateFunctionCode: each update makes the next one wait for LastUpdateStatus.
        let mut reserved = live.reserved_concurrency;
        if changes.iter().any(|c| matches!(c, FunctionChange::Concurrency(_))) {
            // Left Pending by a run that stopped right after CreateFunction.
            if live.state == State::Pending.as_str() {
                self.wait_active(ctx).await?;
            }
            self.put_concurrency(ctx, spec.reserved_concurrency).await?;
            reserved = spec.reserved_concurrency;
        }
        let mut live = live.clone();
        if changes.iter().any(FunctionChange::is_configuration) {
            live = self.update_configuration(ctx, &spec, &live).await?;
        }
        if changes.iter().any(FunctionChange::is_code) {
            live = self.update_code(ctx, &spec, &live).await?;
        }
        // The waits read the configuration only, which does not carry the concurrency.
        live.reserved_concurrency = reserved;
        Ok(live)
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveFunction) -> Result<()> {
        let name = &live.name;
        let in_vpc = !live.config.subnet_ids.is_empty() || !live.config.security_group_ids.is_empty();
        if in_vpc && live.state != State::Failed.as_str() {
            // Detach from the VPC first: Lambda then starts releasing the function's Hyperplane
            // ENIs, which otherwise block deleting the security group and subnets for up to
            // ~45 min after DeleteFunction (terraform-provider-aws #10329).
            ctx.progress(ID, "detaching the function from the VPC so its network interfaces start releasing");
            self.wait_idle(ctx, live).await?;
            let empty = VpcConfig::builder().set_subnet_ids(Some(vec![])).set_security_group_ids(Some(vec![])).build();
            let res = retry_while_busy(ctx, ID, "the function's previous update to finish", || async {
                ctx.aws
                    .lambda
                    .update_function_configuration()
                    .function_name(name)
                    .vpc_config(empty.clone())
                    .send()
                    .await
                    .aws_with("Lambda", "UpdateFunctionConfiguration", CODES)
            })
            .await;
            match res {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
            match self.wait_updated(ctx, name).await {
                Ok(_) => {}
                // Gone meanwhile: nothing left to delete.
                Err(_) if self.get(ctx, name).await?.is_none() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let res = retry_while_busy(ctx, ID, "the function's previous update to finish", || async {
            ctx.aws.lambda.delete_function().function_name(name).send().await.aws_with(
                "Lambda",
                "DeleteFunction",
                CODES,
            )
        })
        .await;
        crate::error::gone_is_ok(res)
    }

    /// Pending → Active (Lambda sets up the VPC network interfaces meanwhile); Failed is final.
    async fn wait_ready(&self, ctx: &Ctx, live: &LiveFunction) -> Result<()> {
        if live.state == State::Active.as_str() {
            return Ok(());
        }
        self.wait_active(ctx).await
    }

    fn health(&self, live: &LiveFunction) -> Vec<(&'static str, String)> {
        let mut health = vec![("state", live.state.clone()), ("last_update_status", live.last_update_status.clone())];
        if let Some(n) = live.reserved_concurrency {
            health.push(("reserved_concurrency", n.to_string()));
        }
        health
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveFunction) -> Vec<(&'static str, String)> {
        vec![("FunctionName", live.name.clone())]
    }
}

/// A live function for other kinds' tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    pub fn live_function(code: &str) -> LiveFunction {
        LiveFunction {
            name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            state: "Active".into(),
            state_reason: String::new(),
            last_update_status: "Successful".into(),
            config: FunctionConfig {
                runtime: RUNTIME.into(),
                handler: HANDLER.into(),
                memory_mb: 256,
                timeout_seconds: 10,
                role_arn: "arn:aws:iam::1:role/fn".into(),
                environment: BTreeMap::new(),
                tracing: TRACING.into(),
                subnet_ids: BTreeSet::new(),
                security_group_ids: BTreeSet::new(),
                logging: None,
            },
            architecture: "arm64".into(),
            code_sha256: code.into(),
            reserved_concurrency: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::security_group::LiveGroup;
    use crate::resources::subnet::LiveSubnet;
    use crate::resources::zones::Zone;

    fn inputs() -> LiveStates {
        let mut inputs = LiveStates::default();
        inputs.insert(
            iam_role::FUNCTION,
            iam_role::LiveRole {
                name: "fn".into(),
                arn: "arn:aws:iam::1:role/fn".into(),
                trust: serde_json::Value::Null,
                inline: None,
                extra_inline: vec![],
                attached: vec![],
                boundary: None,
            },
        );
        inputs.insert(
            security_group::ID,
            LiveGroup {
                id: "sg-1".into(),
                name: "g".into(),
                description: "d".into(),
                vpc_id: "vpc-1".into(),
                rules: vec![],
            },
        );
        for (i, id) in [(0, "subnet-a"), (1, "subnet-b")] {
            inputs.insert(
                subnet::id(i),
                LiveSubnet {
                    id: id.into(),
                    cidr: "10.1.0.0/24".into(),
                    az: Zone { name: "us-east-1a".into(), id: "use1-az1".into() },
                    vpc_id: "vpc-1".into(),
                    map_public_ip_on_launch: false,
                },
            );
        }
        inputs
    }

    fn function() -> Function {
        Function {
            name: "apigw_handler".into(),
            architecture: "arm64".into(),
            memory_mb: 256,
            timeout_seconds: 10,
            subnets: 2,
            table_name: "demo_table".into(),
            log_group: "/aws/lambda/apigw_handler".into(),
            artifact: Arc::new(Artifact { zip: vec![1, 2, 3], sha256_b64: "sha-new".into(), source: "test".into() }),
            reserved_concurrency: None,
        }
    }

    /// What moto answers for the function `create` made: no LoggingConfig.
    fn live(spec: &FunctionSpec) -> LiveFunction {
        let mut config = spec.config.clone();
        config.logging = None;
        LiveFunction {
            name: "apigw_handler".into(),
            arn: "arn:aws:lambda:us-east-1:1:function:apigw_handler".into(),
            state: "Active".into(),
            state_reason: String::new(),
            last_update_status: "Successful".into(),
            config,
            architecture: spec.architecture.clone(),
            code_sha256: spec.code_sha256.clone(),
            reserved_concurrency: spec.reserved_concurrency,
        }
    }

    fn fields(changes: &[FunctionChange]) -> Vec<String> {
        changes.iter().map(|c| c.show().field).collect()
    }

    #[test]
    fn deps_include_every_subnet_but_not_the_table() {
        let deps: Vec<String> = Resource::deps(&function()).iter().map(|d| d.on.to_string()).collect();
        assert_eq!(deps, vec!["function-role", "function-log-group", "function-sg", "subnet-0", "subnet-1"]);
    }

    #[test]
    fn spec_is_resolved_from_inputs() {
        let spec = function().spec(&inputs()).unwrap();
        assert_eq!(spec.config.environment, BTreeMap::from([("TABLE_NAME".to_string(), "demo_table".to_string())]));
        assert_eq!(spec.config.subnet_ids, BTreeSet::from(["subnet-a".to_string(), "subnet-b".to_string()]));
        assert_eq!(
            spec.config.logging,
            Some(Logging { format: "JSON".into(), group: "/aws/lambda/apigw_handler".into() })
        );
        assert_eq!((spec.config.runtime.as_str(), spec.config.handler.as_str()), ("provided.al2023", "bootstrap"));
        assert_eq!(spec.config.tracing, "Active");
    }

    #[test]
    fn in_sync_function_has_no_changes_even_without_logging_config() {
        let spec = function().spec(&inputs()).unwrap();
        assert!(diff(&spec, &live(&spec)).is_empty());
        let mut l = live(&spec);
        l.config.logging = spec.config.logging.clone();
        assert!(diff(&spec, &l).is_empty());
    }

    #[test]
    fn a_new_artifact_is_a_code_change_only() {
        let spec = function().spec(&inputs()).unwrap();
        let mut l = live(&spec);
        l.code_sha256 = "sha-old".into();
        let changes = diff(&spec, &l);
        assert_eq!(fields(&changes), vec!["code"]);
        assert!(changes.iter().all(FunctionChange::is_code));
    }

    #[test]
    fn each_configuration_drift_is_reported() {
        type Mutate = fn(&mut LiveFunction);
        let cases: &[(Mutate, &str)] = &[
            (|l| l.architecture = "x86_64".into(), "architecture"),
            (|l| l.config.runtime = "provided.al2".into(), "runtime"),
            (|l| l.config.handler = "main".into(), "handler"),
            (|l| l.config.memory_mb = 128, "memory_mb"),
            (|l| l.config.timeout_seconds = 3, "timeout_seconds"),
            (|l| l.config.role_arn = "arn:aws:iam::1:role/other".into(), "role"),
            (
                |l| {
                    l.config.environment.insert("DEBUG".into(), "1".into());
                },
                "environment",
            ),
            (|l| l.config.environment.clear(), "environment"),
            (|l| l.config.tracing = "PassThrough".into(), "tracing"),
            (
                |l| {
                    l.config.subnet_ids.remove("subnet-b");
                },
                "subnets",
            ),
            (|l| l.config.subnet_ids.clear(), "subnets"),
            (|l| l.config.security_group_ids = BTreeSet::from(["sg-2".to_string()]), "security_groups"),
            (
                |l| {
                    l.config.logging =
                        Some(Logging { format: "Text".into(), group: "/aws/lambda/apigw_handler".into() })
                },
                "logging",
            ),
            (|l| l.config.logging = Some(Logging { format: "JSON".into(), group: "/other".into() }), "logging"),
        ];
        let spec = function().spec(&inputs()).unwrap();
        for (mutate, field) in cases {
            let mut l = live(&spec);
            mutate(&mut l);
            let changes = diff(&spec, &l);
            assert_eq!(fields(&changes), vec![*field]);
            assert!(!changes[0].show().replace, "{field}");
            assert_eq!(changes[0].is_code(), *field == "architecture", "{field}");
        }
    }

    #[test]
    fn subnet_order_does_not_matter() {
        let spec = function().spec(&inputs()).unwrap();
        let mut l = live(&spec);
        l.config.subnet_ids = ["subnet-b", "subnet-a"].iter().map(|s| s.to_string()).collect();
        assert!(diff(&spec, &l).is_empty());
    }

    #[test]
    fn reserved_concurrency_is_its_own_change() {
        let mut f = function();
        f.reserved_concurrency = Some(5);
        assert_eq!(Resource::create_rounds(&f), 2, "CreateFunction, then PutFunctionConcurrency");
        let spec = f.spec(&inputs()).unwrap();
        // (live, change expected as (desired, live) text)
        type Case = (Option<i32>, Option<(&'static str, &'static str)>);
        let cases: &[Case] = &[(Some(5), None), (None, Some(("5", "none"))), (Some(50), Some(("5", "50")))];
        for (live_reserved, want) in cases {
            let mut l = live(&spec);
            l.reserved_concurrency = *live_reserved;
            let changes = diff(&spec, &l);
            match want {
                None => assert!(changes.is_empty(), "{live_reserved:?}: {changes:?}"),
                Some((d, lv)) => {
                    assert_eq!(
                        changes,
                        vec![FunctionChange::Concurrency(FieldChange::update("reserved_concurrency", d, lv))]
                    );
                    assert!(!changes[0].is_configuration() && !changes[0].is_code());
                }
            }
        }
        // Not configured: one reserved by hand is released.
        let spec = function().spec(&inputs()).unwrap();
        let mut l = live(&spec);
        l.reserved_concurrency = Some(7);
        assert_eq!(fields(&diff(&spec, &l)), vec!["reserved_concurrency"]);
        assert_eq!(Resource::create_rounds(&function()), 1);
    }

    #[test]
    fn a_failed_function_is_replaced() {
        let spec = function().spec(&inputs()).unwrap();
        let mut l = live(&spec);
        l.state = "Failed".into();
        l.state_reason = "The function could not be created: SubnetOutOfIPAddresses".into();
        let changes = diff(&spec, &l);
        assert_eq!(fields(&changes), vec!["state"]);
        assert!(changes[0].show().replace);
        assert!(changes[0].show().live.contains("SubnetOutOfIPAddresses"));
    }

    #[test]
    fn live_function_is_read_from_get_function() {
        use aws_sdk_lambda::types::{EnvironmentResponse, TracingConfigResponse, VpcConfigResponse};
        let c = FunctionConfiguration::builder()
            .function_arn("arn:f")
            .runtime(Runtime::from(RUNTIME))
            .handler("bootstrap")
            .memory_size(256)
            .timeout(10)
            .role("arn:aws:iam::1:role/fn")
            .environment(EnvironmentResponse::builder().variables("TABLE_NAME", "demo_table").build())
            .tracing_config(TracingConfigResponse::builder().mode(TracingMode::Active).build())
            .vpc_config(
                VpcConfigResponse::builder()
                    .subnet_ids("subnet-b")
                    .subnet_ids("subnet-a")
                    .security_group_ids("sg-1")
                    .vpc_id("vpc-123abc")
                    .build(),
            )
            .architectures(Architecture::Arm64)
            .code_sha256("sha-new")
            .state(State::Active)
            .build();
        let spec = function().spec(&inputs()).unwrap();
        let l = live_from(&c);
        assert_eq!(l.config.logging, None);
        assert!(diff(&spec, &l).is_empty(), "{:?}", diff(&spec, &l));

        // Lambda's defaults when fields are absent.
        let bare = live_from(&FunctionConfiguration::builder().build());
        assert_eq!((bare.architecture.as_str(), bare.config.tracing.as_str()), ("x86_64", "PassThrough"));
    }
}
