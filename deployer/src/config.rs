//! TOML config -> validated [`Config`]. One file per environment in `config/`. Unknown keys,
//! wrong types and out-of-range values are rejected before any AWS call, with a one-line message
//! naming the file, the key and what was expected.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Retention values CloudWatch Logs accepts (PutRetentionPolicy `retentionInDays`).
pub const RETENTION_DAYS: [i32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stack name: the value of the `movies-stack:stack` tag and the prefix of derived names.
    pub stack: String,
    #[serde(default)]
    pub aws: AwsSection,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub table: TableSection,
    #[serde(default)]
    pub function: FunctionSection,
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub usage_plans: UsagePlans,
    #[serde(default)]
    pub alarms: Alarms,
    #[serde(default)]
    pub waf: WafSection,
    #[serde(default)]
    pub deploy: DeploySection,
    /// Where the file was read from (not a key).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// Use fixed dummy credentials (emulators only; requires `endpoint_url`).
    #[serde(default)]
    pub dummy_credentials: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub vpc_cidr: String,
    /// How many AZs (one subnet each); default: as many as `availability_zones` lists, else 2.
    az_count: Option<usize>,
    pub subnet_prefix: u8,
    /// The zones to use, by name (`us-east-1a`) or zone ID (`use1-az1`), in subnet order.
    /// Empty: chosen by zone ID among the available ones (see `resources/zones.rs`).
    pub availability_zones: Vec<String>,
}

impl Default for Network {
    fn default() -> Self {
        Network { vpc_cidr: "10.1.0.0/16".into(), az_count: None, subnet_prefix: 24, availability_zones: Vec::new() }
    }
}

impl Network {
    /// The number of AZs, hence of subnets.
    pub fn az_count(&self) -> usize {
        match (self.az_count, self.availability_zones.len()) {
            (Some(n), _) => n,
            (None, 0) => 2,
            (None, listed) => listed,
        }
    }
}

/// A zone ID as EC2 names them: `use1-az1`, `apne1-az4`, `usw2-lax1-az1` (Local Zones).
pub fn is_zone_id(s: &str) -> bool {
    let Some((prefix, n)) = s.rsplit_once("-az") else { return false };
    !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// A zone name: the region's name and a letter, `us-east-1a`.
pub fn is_zone_name(s: &str) -> bool {
    match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_lowercase() => crate::aws::validate_region(&s[..i]).is_ok(),
        _ => false,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableSection {
    pub name: String,
}

impl Default for TableSection {
    fn default() -> Self {
        TableSection { name: "demo_table".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionSection {
    pub name: String,
    pub architecture: String,
    pub memory_mb: i32,
    pub timeout_seconds: i32,
    /// Concurrent executions reserved for the function (PutFunctionConcurrency); `None`: none
    /// reserved, the function shares the account's unreserved pool.
    pub reserved_concurrency: Option<i32>,
}

impl Default for FunctionSection {
    fn default() -> Self {
        FunctionSection {
            name: "apigw_handler".into(),
            architecture: "arm64".into(),
            memory_mb: 256,
            timeout_seconds: 10,
            reserved_concurrency: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    pub stage: String,
    /// The stage's method throttling (`*/*`), a ceiling above the usage plans: steady requests
    /// per second, and burst. Both or neither; neither: not managed.
    pub throttle_rate: Option<f64>,
    pub throttle_burst: Option<i32>,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection { stage: "prod".into(), throttle_rate: None, throttle_burst: None }
    }
}

impl ApiSection {
    /// (rate, burst) when the stage's throttling is managed.
    pub fn throttle(&self) -> Option<(f64, i32)> {
        self.throttle_rate.zip(self.throttle_burst)
    }
}

/// `[alarms]`: the CloudWatch alarms on the function and the API (`resources/alarm.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alarms {
    /// `false`: no alarms (`up` deletes the ones an earlier config made).
    pub enabled: bool,
    /// The API's p99 latency above which its alarm fires, in milliseconds.
    pub latency_p99_ms: u32,
    /// The function's concurrent executions at which its alarm fires.
    pub concurrent_executions: u32,
    /// Where the alarms notify when they fire (and recover); none: state changes only.
    pub sns_topic_arn: Option<String>,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms { enabled: true, latency_p99_ms: 2500, concurrent_executions: 80, sns_topic_arn: None }
    }
}

/// How a new version of the function takes the traffic of the alias `live` (`[deploy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The alias moves to the new version in one call.
    AllAtOnce,
    /// `canary_percent` of the traffic for `interval_seconds`, watched, then all of it.
    Canary,
    /// `canary_percent` more every `interval_seconds`, watched, until all of it.
    Linear,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::AllAtOnce => "all-at-once",
            Strategy::Canary => "canary",
            Strategy::Linear => "linear",
        }
    }
}

/// `[deploy]`: versions, the alias `live`, and how a new version takes the traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploySection {
    pub strategy: Strategy,
    /// The share of the traffic the new version gets first (canary), or per step (linear).
    pub canary_percent: u8,
    /// How long the canary is watched (canary), or each step (linear), in seconds.
    pub interval_seconds: u32,
    /// Published versions kept (the live one and a canary's are always kept).
    pub keep_versions: u16,
}

impl Default for DeploySection {
    fn default() -> Self {
        DeploySection { strategy: Strategy::AllAtOnce, canary_percent: 10, interval_seconds: 300, keep_versions: 10 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logs {
    pub retention_days: i32,
}

impl Default for Logs {
    fn default() -> Self {
        Logs { retention_days: 365 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsagePlans {
    pub standard: UsagePlan,
    pub premium: UsagePlan,
}

impl Default for UsagePlans {
    fn default() -> Self {
        UsagePlans {
            standard: UsagePlan {
                name: "Standard".into(),
                rate_limit: 50.0,
                burst_limit: 100,
                quota_limit: 10_000,
                quota_period: "DAY".into(),
            },
            premium: UsagePlan {
                name: "Premium".into(),
                rate_limit: 100.0,
                burst_limit: 200,
                quota_limit: 50_000,
                quota_period: "DAY".into(),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlan {
    pub name: String,
    pub rate_limit: f64,
    pub burst_limit: i32,
    pub quota_limit: i32,
    pub quota_period: String,
}

/// A WAF web ACL on the stage: off by default, because it costs money every month (AWS WAF
/// pricing: per web ACL, per rule, per million requests).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WafSection {
    pub enabled: bool,
    /// Requests one IP may make in 5 minutes before the rate-based rule blocks it.
    pub rate_limit_per_5min: i64,
}

impl Default for WafSection {
    fn default() -> Self {
        WafSection { enabled: false, rate_limit_per_5min: 2000 }
    }
}

/// The limits of a rate-based rule (WAFV2 API reference, RateBasedStatement `Limit`: 10 to
/// 2,000,000,000).
pub const WAF_RATE_LIMITS: std::ops::RangeInclusive<i64> = 10..=2_000_000_000;

impl UsagePlans {
    /// (tier, plan), in a fixed order.
    pub fn tiers(&self) -> [(&'static str, &UsagePlan); 2] {
        [("standard", &self.standard), ("premium", &self.premium)]
    }
}

/// `--env NAME` -> `config/NAME.toml`; `--config PATH` wins.
pub fn resolve_path(env: &str, config: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = config {
        return Ok(p.to_path_buf());
    }
    if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::input(format!("--env `{env}`: expected a name made of letters, digits, `-` and `_`")));
    }
    Ok(PathBuf::from("config").join(format!("{env}.toml")))
}

pub fn load(path: &Path) -> Result<Config> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            let envs = available_envs(path);
            if envs.is_empty() { String::new() } else { format!(" (available: {})", envs.join(", ")) }
        } else {
            String::new()
        };
        Error::input(format!("{shown}: cannot read config file: {e}{hint}"))
    })?;
    let mut config = parse(&text).map_err(|(key, msg)| match key {
        Some(k) => Error::input(format!("{shown}: key `{k}`: {msg}")),
        None => Error::input(format!("{shown}: {msg}")),
    })?;
    config.path = path.to_path_buf();
    Ok(config)
}

fn available_envs(path: &Path) -> Vec<String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut envs: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_string))
        .collect();
    envs.sort();
    envs
}

/// Parse and validate. On error: (dotted key if known, message with the line).
pub fn parse(text: &str) -> std::result::Result<Config, (Option<String>, String)> {
    let de = toml::Deserializer::parse(text).map_err(|e| {
        // A duplicate key's span is the key itself: name it.
        let key = e
            .span()
            .filter(|_| e.message().contains("duplicate key"))
            .and_then(|span| text.get(span))
            .map(|k| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !k.contains('\n'));
        (key, one_line(&e, text))
    })?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = one_line(&inner, text);
        let parent = if path == "." || path.is_empty() { None } else { Some(path) };
        // For a missing key the path is its table's; name the key itself.
        let missing = msg.strip_prefix("missing field `").and_then(|m| m.split('`').next());
        let key = match (parent, missing) {
            (Some(p), Some(m)) => Some(format!("{p}.{m}")),
            (None, Some(m)) => Some(m.to_string()),
            (p, None) => p,
        };
        (key, msg)
    })?;
    validate(&config).map_err(|(k, m)| (Some(k.to_string()), m))?;
    Ok(config)
}

fn one_line(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

type Invalid = (&'static str, String);

fn check(ok: bool, key: &'static str, msg: impl FnOnce() -> String) -> std::result::Result<(), Invalid> {
    if ok { Ok(()) } else { Err((key, msg())) }
}

fn validate(c: &Config) -> std::result::Result<(), Invalid> {
    let s = &c.stack;
    check(
        !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|ch: char| ch.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "stack",
        || format!("expected 1-32 characters: lowercase letters, digits and `-`, starting with a letter; found {s:?}"),
    )?;
    // The function's security group is named `<stack>-function`, and EC2 refuses group names
    // that start with `sg-` (CreateSecurityGroup reference).
    check(!s.starts_with("sg-"), "stack", || {
        format!(
            "{s:?} starts with `sg-`, which AWS refuses at the start of a security group name (ours is `{s}-function`)"
        )
    })?;
    if let Some(r) = &c.aws.region {
        check(crate::aws::validate_region(r).is_ok(), "aws.region", || {
            format!("expected an AWS region like us-east-1, found {r:?}")
        })?;
    }
    if let Some(p) = &c.aws.profile {
        check(!p.trim().is_empty(), "aws.profile", || "expected a profile name, found an empty string".into())?;
    }
    if let Some(u) = &c.aws.endpoint_url {
        check(valid_url(u), "aws.endpoint_url", || format!("expected an http:// or https:// URL, found {u:?}"))?;
    }

    let (net, prefix) = parse_cidr(&c.network.vpc_cidr).ok_or_else(|| {
        ("network.vpc_cidr", format!("expected an IPv4 CIDR block like 10.1.0.0/16, found {:?}", c.network.vpc_cidr))
    })?;
    check((16..=24).contains(&prefix), "network.vpc_cidr", || {
        format!("expected a block between /16 and /24 (AWS VPC limits, and room for subnets), found /{prefix}")
    })?;
    let mask = u32::MAX << (32 - prefix);
    check(u32::from(net) & !mask == 0, "network.vpc_cidr", || {
        format!(
            "{:?} has host bits set; did you mean {}/{prefix}?",
            c.network.vpc_cidr,
            Ipv4Addr::from(u32::from(net) & mask)
        )
    })?;
    let zones = &c.network.availability_zones;
    for z in zones {
        check(is_zone_name(z) || is_zone_id(z), "network.availability_zones", || {
            format!("expected zone names like \"us-east-1a\" or zone IDs like \"use1-az1\", found {z:?}")
        })?;
    }
    if let Some(dup) = zones.iter().enumerate().find_map(|(i, z)| zones[..i].contains(z).then_some(z)) {
        return Err(("network.availability_zones", format!("{dup:?} is listed twice (one subnet per zone)")));
    }
    let az_count = c.network.az_count();
    check(zones.is_empty() || zones.len() == az_count, "network.availability_zones", || {
        format!("lists {} zone(s) but network.az_count is {az_count}: make them agree, or drop az_count", zones.len())
    })?;
    check((1..=6).contains(&az_count), "network.az_count", || {
        format!("expected 1 to 6 availability zones, found {az_count}")
    })?;
    let sp = c.network.subnet_prefix;
    check(sp > prefix && sp <= 28, "network.subnet_prefix", || {
        format!("expected a prefix longer than the VPC's /{prefix} and at most /28, found /{sp}")
    })?;
    check((1usize << (sp - prefix).min(20)) >= az_count, "network.subnet_prefix", || {
        format!(
            "/{sp} subnets leave room for only {} subnets in /{prefix}, but az_count is {az_count}",
            1usize << (sp - prefix)
        )
    })?;

    let t = &c.table.name;
    check(
        (3..=255).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
        "table.name",
        || format!("expected 3-255 characters of letters, digits, `_`, `-`, `.` (DynamoDB's rule), found {t:?}"),
    )?;
    let f = &c.function;
    check(
        (1..=64).contains(&f.name.len()) && f.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)),
        "function.name",
        || format!("expected 1-64 characters of letters, digits, `_` and `-` (Lambda's rule), found {:?}", f.name),
    )?;
    check(f.architecture == "arm64" || f.architecture == "x86_64", "function.architecture", || {
        format!("expected \"arm64\" or \"x86_64\", found {:?}", f.architecture)
    })?;
    check((128..=10240).contains(&f.memory_mb), "function.memory_mb", || {
        format!("expected 128 to 10240 (MB), found {}", f.memory_mb)
    })?;
    check((1..=900).contains(&f.timeout_seconds), "function.timeout_seconds", || {
        format!("expected 1 to 900 (seconds), found {}", f.timeout_seconds)
    })?;
    if let Some(r) = f.reserved_concurrency {
        // 0 is valid for Lambda, and stops every invocation: not what an API wants.
        check(r >= 1, "function.reserved_concurrency", || {
            format!("expected at least 1 (0 would throttle every request), found {r}; remove the key to reserve none")
        })?;
    }
    let st = &c.api.stage;
    check(
        (1..=128).contains(&st.len()) && st.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)),
        "api.stage",
        || format!("expected 1-128 characters of letters, digits, `_` and `-`, found {st:?}"),
    )?;
    check(RETENTION_DAYS.contains(&c.logs.retention_days), "logs.retention_days", || {
        format!(
            "expected one of the values CloudWatch Logs accepts ({RETENTION_DAYS:?}), found {}",
            c.logs.retention_days
        )
    })?;
    validate_api_throttle(c)?;
    validate_alarms(&c.alarms)?;
    validate_deploy(&c.deploy)?;
    for (tier, p) in c.usage_plans.tiers() {
        let key = |field: &str| -> &'static str {
            // Static keys for the error tuple: the set is small and fixed.
            match (tier, field) {
                ("standard", "name") => "usage_plans.standard.name",
                ("standard", "rate_limit") => "usage_plans.standard.rate_limit",
                ("standard", "burst_limit") => "usage_plans.standard.burst_limit",
                ("standard", "quota_limit") => "usage_plans.standard.quota_limit",
                ("standard", _) => "usage_plans.standard.quota_period",
                (_, "name") => "usage_plans.premium.name",
                (_, "rate_limit") => "usage_plans.premium.rate_limit",
                (_, "burst_limit") => "usage_plans.premium.burst_limit",
                (_, "quota_limit") => "usage_plans.premium.quota_limit",
                _ => "usage_plans.premium.quota_period",
            }
        };
        check(!p.name.trim().is_empty() && p.name.len() <= 64, key("name"), || {
            format!("expected a name of 1-64 characters, found {:?}", p.name)
        })?;
        check(p.rate_limit.is_finite() && p.rate_limit > 0.0 && p.rate_limit <= 10_000.0, key("rate_limit"), || {
            format!(
                "expected requests per second above 0 and at most 10000 (the account limit), found {}",
                p.rate_limit
            )
        })?;
        check(p.burst_limit >= 1 && f64::from(p.burst_limit) >= p.rate_limit, key("burst_limit"), || {
            format!("expected a burst of at least the rate limit ({}), found {}", p.rate_limit, p.burst_limit)
        })?;
        check(p.quota_limit >= 1, key("quota_limit"), || {
            format!("expected a quota of at least 1 request per period, found {}", p.quota_limit)
        })?;
        check(["DAY", "WEEK", "MONTH"].contains(&p.quota_period.as_str()), key("quota_period"), || {
            format!("expected \"DAY\", \"WEEK\" or \"MONTH\", found {:?}", p.quota_period)
        })?;
    }
    let limit = c.waf.rate_limit_per_5min;
    check(WAF_RATE_LIMITS.contains(&limit), "waf.rate_limit_per_5min", || {
        format!(
            "expected {} to {} requests per IP per 5 minutes (AWS WAF's rate-based rule limits), found {limit}",
            WAF_RATE_LIMITS.start(),
            WAF_RATE_LIMITS.end()
        )
    })?;
    Ok(())
}

/// The stage's throttling is a ceiling above the usage plans (API Gateway applies the stricter
/// of the stage's and the key's plan's limits): below a plan's, it would cut that plan short.
fn validate_api_throttle(c: &Config) -> std::result::Result<(), Invalid> {
    let api = &c.api;
    match (api.throttle_rate, api.throttle_burst) {
        (None, None) => return Ok(()),
        (Some(_), None) => {
            return Err(("api.throttle_burst", "missing: api.throttle_rate is set, set both or neither".into()));
        }
        (None, Some(_)) => {
            return Err(("api.throttle_rate", "missing: api.throttle_burst is set, set both or neither".into()));
        }
        (Some(_), Some(_)) => {}
    }
    let (rate, burst) = api.throttle().expect("both are set");
    let tiers = c.usage_plans.tiers();
    let (top_rate, rate_tier) =
        tiers.iter().map(|(t, p)| (p.rate_limit, *t)).fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
    let (top_burst, burst_tier) =
        tiers.iter().map(|(t, p)| (p.burst_limit, *t)).fold((0, ""), |a, b| if b.0 > a.0 { b } else { a });
    check(rate.is_finite() && rate > 0.0 && rate <= 10_000.0, "api.throttle_rate", || {
        format!("expected requests per second above 0 and at most 10000 (the account limit), found {rate}")
    })?;
    check(rate >= top_rate, "api.throttle_rate", || {
        format!(
            "{rate} is below the {rate_tier} usage plan's rate_limit ({top_rate}): the stage's throttling is a ceiling \
             above the plans; raise it, or lower the plan"
        )
    })?;
    check(burst >= top_burst, "api.throttle_burst", || {
        format!(
            "{burst} is below the {burst_tier} usage plan's burst_limit ({top_burst}): the stage's throttling is a \
             ceiling above the plans; raise it, or lower the plan"
        )
    })?;
    Ok(())
}

fn validate_deploy(d: &DeploySection) -> std::result::Result<(), Invalid> {
    // A routing weight is 0.0-1.0 (Lambda's AliasRoutingConfiguration): 100% is the promotion itself.
    check((1..=99).contains(&d.canary_percent), "deploy.canary_percent", || {
        format!("expected 1 to 99 (percent of the traffic), found {}", d.canary_percent)
    })?;
    check((1..=3600).contains(&d.interval_seconds), "deploy.interval_seconds", || {
        format!("expected 1 to 3600 seconds, found {}", d.interval_seconds)
    })?;
    check((1..=1000).contains(&d.keep_versions), "deploy.keep_versions", || {
        format!("expected 1 to 1000 versions, found {}", d.keep_versions)
    })?;
    Ok(())
}

fn validate_alarms(a: &Alarms) -> std::result::Result<(), Invalid> {
    check(a.latency_p99_ms > 0, "alarms.latency_p99_ms", || "expected a bound above 0 (milliseconds), found 0".into())?;
    check(a.concurrent_executions > 0, "alarms.concurrent_executions", || {
        "expected at least 1 concurrent execution, found 0".into()
    })?;
    if let Some(arn) = &a.sns_topic_arn {
        check(is_sns_topic_arn(arn), "alarms.sns_topic_arn", || {
            format!("expected an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:alerts, found {arn:?}")
        })?;
    }
    Ok(())
}

/// `arn:PARTITION:sns:REGION:ACCOUNT:TOPIC`: a 12-digit account, a topic name of 1-256 letters,
/// digits, `-` and `_` (`.fifo` at the end of a FIFO topic) (SNS CreateTopic reference).
pub fn is_sns_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    let [arn_word, partition, service, region, account, topic] = parts.as_slice() else { return false };
    let name = topic.strip_suffix(".fifo").unwrap_or(topic);
    *arn_word == "arn"
        && ["aws", "aws-cn", "aws-us-gov"].contains(partition)
        && *service == "sns"
        && crate::aws::validate_region(region).is_ok()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=256).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn valid_url(u: &str) -> bool {
    let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// A plain `http://` URL to a host that is not this machine (loopback: `localhost`, 127.0.0.0/8,
/// `[::1]`): what it carries (signed AWS requests with a session token, an API key) crosses the
/// network unencrypted.
pub fn plain_http_off_machine(u: &str) -> bool {
    let Some(rest) = u.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// "10.1.0.0/16" -> (10.1.0.0, 16)
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, prefix) = s.split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 32).then_some(())?;
    Some((ip.parse().ok()?, prefix))
}

/// The `n`-th subnet of length `subnet_prefix` in `vpc_cidr` (assumes a validated config).
pub fn subnet_cidr(vpc_cidr: &str, subnet_prefix: u8, n: usize) -> String {
    let (net, _) = parse_cidr(vpc_cidr).expect("validated CIDR");
    let size = 1u32 << (32 - subnet_prefix);
    format!("{}/{subnet_prefix}", Ipv4Addr::from(u32::from(net) + size * n as u32))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_is_for_this_machine_only() {
        for on_machine in [
            "http://localhost:5055",
            "http://127.0.0.1:5055/",
            "http://127.9.9.9",
            "http://[::1]:4566/x",
            "http://moto.localhost:5055",
            "http://user:pw@LOCALHOST:1",
            "https://aws.example.com",
            "https://10.0.0.1:4566",
        ] {
            assert!(!super::plain_http_off_machine(on_machine), "{on_machine}");
        }
        for off in [
            "http://aws.example.com",
            "http://10.0.0.1:4566",
            "http://[fd00::1]:1/",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(super::plain_http_off_machine(off), "{off}");
        }
    }

    use super::*;

    #[test]
    fn shipped_configs_are_valid() {
        for env in ["dev", "prod", "local", "demo"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config").join(format!("{env}.toml"));
            load(&path).unwrap_or_else(|e| panic!("{env}: {e}"));
        }
    }

    #[test]
    fn defaults_are_the_seed() {
        let c = parse("stack = \"movies-dev\"").unwrap();
        assert_eq!(c.network.vpc_cidr, "10.1.0.0/16");
        assert_eq!(c.table.name, "demo_table");
        assert_eq!(c.function.name, "apigw_handler");
        assert_eq!(c.function.architecture, "arm64");
        assert_eq!(c.logs.retention_days, 365);
        assert_eq!(c.usage_plans.standard.burst_limit, 100);
        assert_eq!(c.usage_plans.premium.quota_limit, 50_000);
        assert!(c.alarms.enabled);
        assert_eq!((c.alarms.latency_p99_ms, c.alarms.concurrent_executions), (2500, 80));
        assert_eq!((c.function.reserved_concurrency, c.api.throttle()), (None, None));
        assert!(!c.waf.enabled, "the web ACL costs money: off unless asked for");
        assert_eq!(c.waf.rate_limit_per_5min, 2000);
    }

    #[test]
    fn throttle_alarms_and_reserved_concurrency_are_read() {
        let c = parse(
            "stack = \"s\"\n[function]\nreserved_concurrency = 5\n[api]\nthrottle_rate = 100.0\nthrottle_burst = 200\n\
             [alarms]\nenabled = false\nlatency_p99_ms = 900\nsns_topic_arn = \"arn:aws:sns:eu-west-1:123456789012:ops-alerts\"",
        )
        .unwrap();
        assert_eq!(c.function.reserved_concurrency, Some(5));
        assert_eq!(c.api.throttle(), Some((100.0, 200)));
        assert!(!c.alarms.enabled);
        assert_eq!(c.alarms.latency_p99_ms, 900);
        assert_eq!(c.alarms.sns_topic_arn.as_deref(), Some("arn:aws:sns:eu-west-1:123456789012:ops-alerts"));
        for ok in ["arn:aws:sns:us-east-1:123456789012:a", "arn:aws-cn:sns:cn-north-1:123456789012:orders.fifo"] {
            assert!(is_sns_topic_arn(ok), "{ok}");
        }
        for bad in [
            "arn:aws:sqs:us-east-1:123456789012:a",
            "arn:aws:sns:us-east-1:1234:a",
            "arn:aws:sns:us-east-1:123456789012:",
            "arn:aws:sns:us-east-1:123456789012:a b",
            "arn:aws:sns:mars:123456789012:a",
            "sns:us-east-1:123456789012:a",
        ] {
            assert!(!is_sns_topic_arn(bad), "{bad}");
        }
    }

    #[test]
    fn broken_configs_name_the_key_and_what_was_expected() {
        let base = "stack = \"s\"\n";
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("", Some("stack"), "missing field `stack`"),
            ("stack = \"s\"\nbogus = 1", Some("bogus"), "unknown field `bogus`"),
            ("[network]\nvpc_cdr = \"10.0.0.0/16\"", Some("network.vpc_cdr"), "unknown field `vpc_cdr`"),
            ("[network]\naz_count = \"two\"", Some("network.az_count"), "invalid type"),
            ("[network]\nvpc_cidr = \"10.0.0.0/8\"", Some("network.vpc_cidr"), "between /16 and /24"),
            ("[network]\nvpc_cidr = \"10.0.0.0/25\"", Some("network.vpc_cidr"), "between /16 and /24"),
            ("[network]\nvpc_cidr = \"banana\"", Some("network.vpc_cidr"), "IPv4 CIDR"),
            ("[network]\nvpc_cidr = \"10.1.2.0/16\"", Some("network.vpc_cidr"), "host bits"),
            ("[network]\naz_count = 0", Some("network.az_count"), "1 to 6"),
            ("[network]\nsubnet_prefix = 16", Some("network.subnet_prefix"), "longer than"),
            ("[logs]\nretention_days = 366", Some("logs.retention_days"), "CloudWatch Logs accepts"),
            ("[table]\nname = \"\"", Some("table.name"), "3-255"),
            ("[function]\nname = \"\"", Some("function.name"), "1-64"),
            ("[function]\narchitecture = \"mips\"", Some("function.architecture"), "arm64"),
            ("[function]\nmemory_mb = 64", Some("function.memory_mb"), "128 to 10240"),
            ("[api]\nstage = \"a b\"", Some("api.stage"), "letters"),
            (
                "[usage_plans.standard]\nname = \"S\"\nrate_limit = 50.0\nburst_limit = 10\nquota_limit = 1\nquota_period = \"DAY\"",
                Some("usage_plans.standard.burst_limit"),
                "at least the rate limit",
            ),
            (
                "[usage_plans.premium]\nname = \"P\"\nrate_limit = 1.0\nburst_limit = 10\nquota_limit = 0\nquota_period = \"DAY\"",
                Some("usage_plans.premium.quota_limit"),
                "at least 1",
            ),
            (
                "[usage_plans.premium]\nname = \"P\"\nrate_limit = 1.0\nburst_limit = 10\nquota_limit = 5\nquota_period = \"YEAR\"",
                Some("usage_plans.premium.quota_period"),
                "MONTH",
            ),
            (
                "[usage_plans.premium]\nname = \"\"\nrate_limit = 1.0\nburst_limit = 10\nquota_limit = 5\nquota_period = \"DAY\"",
                Some("usage_plans.premium.name"),
                "1-64",
            ),
            ("[waf]\nrate_limit_per_5min = 9", Some("waf.rate_limit_per_5min"), "10 to 2000000000"),
            ("[waf]\nrate_limit_per_5min = 2000000001", Some("waf.rate_limit_per_5min"), "found 2000000001"),
            ("[waf]\nenabled = \"yes\"", Some("waf.enabled"), "invalid type"),
            ("[waf]\nrate_limit = 100", Some("waf.rate_limit"), "unknown field `rate_limit`"),
            ("[aws]\nregion = \"mars\"", Some("aws.region"), "us-east-1"),
            ("[function]\nreserved_concurrency = 0", Some("function.reserved_concurrency"), "at least 1"),
            ("[api]\nthrottle_rate = 100.0", Some("api.throttle_burst"), "set both or neither"),
            ("[api]\nthrottle_burst = 200", Some("api.throttle_rate"), "set both or neither"),
            ("[api]\nthrottle_rate = 60.0\nthrottle_burst = 200", Some("api.throttle_rate"), "premium usage plan"),
            ("[api]\nthrottle_rate = 100.0\nthrottle_burst = 150", Some("api.throttle_burst"), "premium usage plan"),
            ("[api]\nthrottle_rate = 20000.0\nthrottle_burst = 200", Some("api.throttle_rate"), "at most 10000"),
            ("[alarms]\nlatency_p99_ms = 0", Some("alarms.latency_p99_ms"), "above 0"),
            ("[alarms]\nconcurrent_executions = 0", Some("alarms.concurrent_executions"), "at least 1"),
            ("[alarms]\nsns_topic_arn = \"alerts\"", Some("alarms.sns_topic_arn"), "SNS topic ARN"),
            ("[alarms]\nenable = false", Some("alarms.enable"), "unknown field `enable`"),
            ("[alarms]\nlatency_p99_ms = -5", Some("alarms.latency_p99_ms"), "invalid value"),
            ("[aws]\nendpoint_url = \"localhost:5055\"", Some("aws.endpoint_url"), "http://"),
            ("stack = \"sg-app\"", Some("stack"), "security group"),
            ("[network]\navailability_zones = [\"east\"]", Some("network.availability_zones"), "use1-az1"),
            (
                "[network]\navailability_zones = [\"use1-az1\", \"use1-az1\"]",
                Some("network.availability_zones"),
                "listed twice",
            ),
            (
                "[network]\naz_count = 3\navailability_zones = [\"use1-az1\", \"us-east-1b\"]",
                Some("network.availability_zones"),
                "make them agree",
            ),
        ];
        for (body, key, needle) in cases {
            let text =
                if body.starts_with("stack") || body.is_empty() { body.to_string() } else { format!("{base}{body}") };
            let (k, msg) = parse(&text).expect_err(body);
            assert_eq!(k.as_deref(), *key, "key for {body:?}: {msg}");
            assert!(msg.contains(needle), "message for {body:?} should contain {needle:?}: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg:?}");
        }
        let (key, msg) = parse("stack = \"a\"\nstack = \"b\"\n").unwrap_err();
        assert_eq!(key.as_deref(), Some("stack"), "{msg}");
        let bad_stack = parse("stack = \"My_Stack\"").unwrap_err();
        assert_eq!(bad_stack.0.as_deref(), Some("stack"));
    }

    #[test]
    fn zones_are_named_or_identified() {
        for id in ["use1-az1", "apne1-az4", "usw2-lax1-az1"] {
            assert!(is_zone_id(id) && !is_zone_name(id), "{id}");
        }
        for name in ["us-east-1a", "eu-west-3c", "us-gov-west-1b"] {
            assert!(is_zone_name(name) && !is_zone_id(name), "{name}");
        }
        for bad in ["", "east", "us-east-1", "use1-az", "-az1", "US-EAST-1A"] {
            assert!(!is_zone_name(bad) && !is_zone_id(bad), "{bad}");
        }
        let c =
            parse("stack = \"s\"\n[network]\navailability_zones = [\"use1-az1\", \"use1-az2\", \"use1-az4\"]").unwrap();
        assert_eq!(c.network.az_count(), 3, "the listed zones set the count");
        assert_eq!(parse("stack = \"s\"").unwrap().network.az_count(), 2);
    }

    #[test]
    fn load_names_the_file() {
        let e = load(Path::new("config/nope.toml")).unwrap_err().to_string();
        assert!(e.starts_with("config/nope.toml: cannot read config file"), "{e}");
    }

    #[test]
    fn subnets_are_carved_in_order() {
        assert_eq!(subnet_cidr("10.1.0.0/16", 24, 0), "10.1.0.0/24");
        assert_eq!(subnet_cidr("10.1.0.0/16", 24, 1), "10.1.1.0/24");
        assert_eq!(subnet_cidr("10.1.0.0/20", 22, 3), "10.1.12.0/22");
    }
}
