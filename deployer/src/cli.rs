//! Command-line definitions only (clap). Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Deploy, inspect and tear down the serverless movies API on AWS, directly through the AWS SDK
/// (no CloudFormation, no CDK).
#[derive(Debug, Parser)]
#[command(name = "movies-stack", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Environment: reads config/NAME.toml
    #[arg(long, global = true, default_value = "dev", value_name = "NAME")]
    pub env: String,
    /// Config file to read instead of config/<env>.toml
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "env")]
    pub config: Option<PathBuf>,
    /// AWS profile (overrides AWS_PROFILE and the config file)
    #[arg(long, global = true, env = "AWS_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region (overrides AWS_REGION and the config file)
    #[arg(long, global = true, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint, e.g. a local emulator (overrides AWS_ENDPOINT_URL)
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Allow a plain http:// endpoint on another machine (signed requests, with any session
    /// token, then cross the network unencrypted); loopback endpoints need no flag
    #[arg(long, global = true)]
    pub allow_insecure_endpoint: bool,
    /// Output format of the command's result (stdout) and of its progress (stderr: with json,
    /// one JSON object per line)
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// More detail on stderr (-v, -vv)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress or info lines on stderr: only warnings, errors and what must be read (a
    /// confirmation, the address `serve` listens on); the result on stdout is unchanged
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Where `--profile`, `--region` and `--endpoint-url` came from, for error messages.
    #[arg(skip)]
    pub sources: Sources,
}

/// How to name a setting in an error: the flag, or the environment variable it came from.
#[derive(Debug, Clone)]
pub struct Sources {
    pub profile: &'static str,
    pub region: &'static str,
    pub endpoint_url: &'static str,
}

impl Default for Sources {
    fn default() -> Self {
        Sources { profile: "--profile", region: "--region", endpoint_url: "--endpoint-url" }
    }
}

impl Sources {
    /// Read from clap's matches (global flags may be recorded on the subcommand's matches).
    pub fn from_matches(matches: &clap::ArgMatches) -> Sources {
        let from_env = |id: &str| {
            let mut m = Some(matches);
            while let Some(cur) = m {
                if let Ok(Some(src)) = cur.try_get_raw(id).map(|v| v.map(|_| cur.value_source(id))) {
                    return src == Some(clap::parser::ValueSource::EnvVariable);
                }
                m = cur.subcommand().map(|(_, sub)| sub);
            }
            false
        };
        Sources {
            profile: if from_env("profile") { "AWS_PROFILE" } else { "--profile" },
            region: if from_env("region") { "AWS_REGION" } else { "--region" },
            endpoint_url: if from_env("endpoint_url") { "AWS_ENDPOINT_URL" } else { "--endpoint-url" },
        }
    }
}

pub use crate::ui::Output;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update every resource of the stack so it matches the config
    Up(UpArgs),
    /// Show what `up` would do, resource by resource, without changing anything
    /// (exit 0: no changes, 2: changes, 1: error)
    Plan(PlanArgs),
    /// One row per resource (present / missing / drifted), health and outputs
    /// (exit 0: in sync, 2: something missing or drifted)
    Status,
    /// Print the API key values (the only command that prints them)
    Keys(KeysArgs),
    /// Delete everything the stack owns, in reverse dependency order (keeps the table's data
    /// unless --delete-data)
    Down(DownArgs),
    /// Build the handler and write its deterministic deployment zip (no AWS call)
    Package(PackageArgs),
    /// Remove the stack's lock left by a run that is gone (shows who held it)
    Unlock(UnlockArgs),
    /// Print the least-privilege IAM policy for running movies-stack on this stack (JSON)
    IamPolicy(IamPolicyArgs),
    /// Print (or, as an administrator, --apply) the permissions boundary that caps every role
    /// the stack creates: once per stack, before the first `up` with the iam-policy
    Bootstrap(BootstrapArgs),
    /// Show the stack's resources and their dependencies, from the config alone (no AWS call)
    Graph(GraphArgs),
    /// Write a CloudFormation template of the live stack and the files to import it into a
    /// CloudFormation stack without recreating anything (reads only; the stack must be in sync)
    Export(ExportArgs),
    /// Prove the deployed API works end to end: the seed's requests with no key, a wrong key, the
    /// Standard key, a malformed body and GET, and the item read back from the table
    /// (exit 0: every step matched, 5: a step did not)
    Smoke(SmokeArgs),
    /// Requests per API key and day (API Gateway GetUsage), what remains of the current quota
    /// period, and each plan's throttle and quota
    Usage(UsageArgs),
    /// Read the function's, the API's access or the VPC flow logs (CloudWatch Logs), or follow them
    Logs(LogsArgs),
    /// Print a shell completion script (no config, no AWS call)
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a folder (no config, no AWS
    /// call)
    Man(ManArgs),
    /// The function's deploys, newest first (version, status, when, code, config, commit, who),
    /// read from its versions and the alias `live` alone
    History,
    /// Point the alias `live` back at an earlier version, in one call (default: the one before)
    Rollback(RollbackArgs),
    /// The stack's recent X-Ray traces, newest first, each drawn as a waterfall (API Gateway,
    /// Lambda, the function, its DynamoDB calls), or the service map (--map)
    Traces(TracesArgs),
    /// Serve the deployed API locally: the real handler behind API Gateway's key, usage-plan
    /// and proxy rules, read from the stack (SIGHUP re-reads them)
    Serve(ServeArgs),
    /// A live dashboard of the stack: requests, 4XX/5XX, latency, the function, the table, the
    /// alarms and each key's quota, with sparklines over the last hour (one GetMetricData and
    /// one DescribeAlarms per refresh); q, Esc or Ctrl-C quits. `--once` (or a stdout that is
    /// not a terminal) prints one snapshot
    Top(TopArgs),
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Print it in Graphviz's DOT language (`movies-stack graph --dot | dot -Tsvg > stack.svg`)
    #[arg(long)]
    pub dot: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The folder to write into (created if missing; its four files are overwritten)
    /// [default: ./<stack>-cloudformation]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// The AWS account the policy is for (default: the caller's, from STS GetCallerIdentity)
    #[arg(long, value_name = "ID", value_parser = account_id)]
    pub account: Option<String>,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The AWS account the boundary is for (default: the caller's, from STS GetCallerIdentity)
    #[arg(long, value_name = "ID", value_parser = account_id, conflicts_with = "apply")]
    pub account: Option<String>,
    /// Create the boundary policy (or bring it up to date), with administrator credentials
    /// (iam:CreatePolicy, iam:CreatePolicyVersion, iam:DeletePolicyVersion on it)
    #[arg(long)]
    pub apply: bool,
}

/// A 12-digit AWS account id.
fn account_id(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!("expected a 12-digit AWS account id, found {s:?}"))
    }
}

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Send the requests to this base URL instead of the stage's invoke URL (e.g. a local API)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Leave the test item in the table (it is deleted by default)
    #[arg(long)]
    pub keep_item: bool,
    /// How long one request may take, in seconds
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// How many days to show, today included (UTC)
    #[arg(long, default_value_t = 7, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=90))]
    pub days: u32,
    /// Only this tier's key
    #[arg(long, value_enum)]
    pub tier: Option<Tier>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogSource {
    /// The Lambda function's log group (its JSON lines and the platform's START/END/REPORT)
    Function,
    /// The API stage's access log (one JSON line per request)
    Api,
    /// The VPC flow logs
    Flow,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Which log group
    #[arg(long, value_enum, default_value_t = LogSource::Function)]
    pub source: LogSource,
    /// How far back to start: a number and a unit (s, m, h, d), e.g. 30s, 10m, 2h, 7d
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_since)]
    pub since: std::time::Duration,
    /// Keep reading new events until interrupted (Ctrl-C)
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// CloudWatch Logs filter pattern, e.g. ERROR or '{ $.status = 500 }'
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// With --follow: seconds between two reads
    #[arg(long, default_value_t = 2, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub poll_interval: u64,
}

#[derive(Debug, Args)]
pub struct TracesArgs {
    /// How far back to look: a number and a unit (s, m, h, d), e.g. 30s, 15m, 2h; X-Ray keeps
    /// traces 30 days
    #[arg(long, default_value = "15m", value_name = "DURATION", value_parser = parse_since)]
    pub since: std::time::Duration,
    /// Only traces with a fault (5XX) or an error (4XX, throttles included)
    #[arg(long)]
    pub errors: bool,
    /// The N slowest traces of the window, slowest first
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub slowest: Option<u32>,
    /// Only this trace: 1-XXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX (8 and 24 hex digits)
    #[arg(long, value_name = "TRACE_ID", value_parser = trace_id, conflicts_with_all = ["slowest", "errors", "follow"])]
    pub id: Option<String>,
    /// How many traces at most, newest first
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub limit: u32,
    /// Keep reading new traces until interrupted (Ctrl-C), oldest first
    #[arg(long, short = 'f', conflicts_with = "slowest")]
    pub follow: bool,
    /// With --follow: seconds between two reads
    #[arg(long, default_value_t = 2, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub poll_interval: u64,
    /// The service map instead (X-Ray GetServiceGraph, --since 6h at most): each node's requests,
    /// error and fault rates, each edge's requests and p50 / p99 response time
    #[arg(long, conflicts_with_all = ["id", "errors", "slowest", "follow", "local"])]
    pub map: bool,
    /// Read the traces the `movies-stack serve` of this stack running on this machine recorded,
    /// instead of X-Ray
    #[arg(long)]
    pub local: bool,
}

/// An X-Ray trace id: `1-`, 8 hex digits (the request's epoch seconds), `-`, 24 hex digits.
fn trace_id(s: &str) -> Result<String, String> {
    if crate::resources::xray::is_trace_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!("expected an X-Ray trace id like 1-5759e988-bd862e3fe1be46a994272793, found {s:?}"))
    }
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    crate::clock::parse_duration(text)
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write movies-stack.1 and one page per command (movies-stack-up.1, ...) into this folder
    /// instead of printing the main page
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port, printed at start)
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    pub bind: std::net::IpAddr,
    /// Run this host `bootstrap` instead of building handler/ (cargo build --release -p handler)
    #[arg(long, value_name = "PATH")]
    pub bootstrap: Option<PathBuf>,
    /// Execution environments (function processes) at most; requests beyond wait for one
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Seconds API Gateway waits for the function before answering 504 (AWS's default is 29)
    #[arg(long, default_value_t = 29, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=900))]
    pub integration_timeout: u64,
    /// Append the access log lines to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Rebuild the handler when handler/src, handler/Cargo.toml or Cargo.lock change; new requests
    /// then go to the new build, requests in flight finish on the previous one (not with --bootstrap)
    #[arg(long)]
    pub watch: bool,
    /// Cargo profile the handler is built with: release (as deployed, the default) or dev (faster
    /// rebuilds with --watch) (not with --bootstrap)
    #[arg(long, value_name = "PROFILE", value_parser = ["release", "dev"])]
    pub cargo_profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Really remove it, whoever holds it
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Compare against this prebuilt zip instead of building handler/
    #[arg(long, value_name = "ZIP")]
    pub artifact: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    Standard,
    Premium,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Only this tier's key
    #[arg(long, value_enum)]
    pub tier: Option<Tier>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete the DynamoDB table and all its items (turns deletion protection off first)
    #[arg(long)]
    pub delete_data: bool,
    /// How long to wait for Lambda's VPC network interfaces to be released, in minutes
    #[arg(long, default_value_t = 45, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..=180))]
    pub eni_timeout: u64,
    /// How many resources to work on at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How long to wait for another run's lock on this stack, in seconds (0: fail at once)
    #[arg(long, default_value_t = 0, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub lock_timeout: u64,
    /// This run's lease on the stack lock, in seconds: renewed every third of it; a run that
    /// cannot renew stops changing the stack a sixth of it before its end, and another run takes
    /// the lock once it stayed unchanged for the whole lease
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(crate::lock::MIN_LEASE.as_secs()..=3600))]
    pub lock_lease: u64,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Deploy this prebuilt zip (containing `bootstrap`) instead of building handler/
    #[arg(long, value_name = "ZIP")]
    pub artifact: Option<PathBuf>,
    /// Fail, instead of warning, when no CloudTrail trail logs management events
    #[arg(long)]
    pub require_cloudtrail: bool,
    /// How many resources to work on at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How long to wait for another run's lock on this stack, in seconds (0: fail at once)
    #[arg(long, default_value_t = 0, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub lock_timeout: u64,
    /// This run's lease on the stack lock, in seconds: renewed every third of it; a run that
    /// cannot renew stops changing the stack a sixth of it before its end, and another run takes
    /// the lock once it stayed unchanged for the whole lease
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(crate::lock::MIN_LEASE.as_secs()..=3600))]
    pub lock_lease: u64,
    /// After a successful deploy, run `smoke` against the stage (exit 5 if a step fails)
    #[arg(long)]
    pub smoke: bool,
    /// With --smoke: send the requests to this base URL instead of the stage's invoke URL
    #[arg(long, value_name = "URL", requires = "smoke")]
    pub smoke_url: Option<String>,
    /// After the deploy, watch the handler's sources and deploy each saved change (a new
    /// version, all at once); only for an environment whose `deploy.strategy` is all-at-once
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The version to make live (`movies-stack history` lists them); default: the newest one
    /// before the live one that was not rolled back
    #[arg(long, value_name = "VERSION")]
    pub to: Option<u64>,
    /// How long to wait for another run's lock on this stack, in seconds (0: fail at once)
    #[arg(long, default_value_t = 0, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Where to write the zip
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between two refreshes (each is one GetMetricData and one DescribeAlarms)
    #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=300))]
    pub interval: u64,
    /// Print one snapshot and exit (text, or JSON with --output json, which implies it)
    #[arg(long)]
    pub once: bool,
    /// Read the counters of this stack's `movies-stack serve` running on this machine instead of
    /// CloudWatch
    #[arg(long)]
    pub local: bool,
}
