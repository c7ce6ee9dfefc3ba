//! The bad-input corpus (issue 5, part 4): broken config files, flags and environments, in one
//! table with one runner. Each must exit 3 (docs/commands.md "Exit codes": invalid input, including clap's
//! own flag errors) with an `error:` line (plus clap's indented continuation) that names the
//! file, key, flag or variable, and the input-only ones must make ZERO AWS calls (a recording
//! proxy with a dead upstream stands in for AWS). A control run with the valid base config
//! shows that those zero-call checks could fail.
//!
//! Then name collisions with resources we do not own (they need a real moto): `up` must fail,
//! name the resource, and leave it exactly as it was.
//!
//! Placeholders in the table: `FILE` = the case's config file name; in arguments `ZIP` = a valid
//! fake handler zip, `NOTZIP` = a text file, `NOBOOT` = a zip without `bootstrap`, `EMPTY` = an
//! empty file, `PROXY` = the recording proxy's URL, `REFUSED` = a loopback URL nobody listens on.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
};
use e2e::artifact::{write_fake, zip_with_bootstrap};
use e2e::chaos::{Env, Running};
use e2e::inventory::Shape;
use e2e::{Account, Checks, Deployer, Proxy, REMOVE, Stack, StackNames, TempDir, free_port, write_config_file};

#[derive(Debug, Clone, Copy)]
enum Source {
    /// The base config with these overrides (dotted key, raw TOML value or REMOVE).
    Overrides(&'static [(&'static str, &'static str)]),
    Text(&'static str),
    Bytes(&'static [u8]),
    /// `--config` pointing at a folder.
    Dir,
    /// `--config` pointing at a file that does not exist (`does-not-exist.toml`).
    Missing,
    /// No `--config`.
    NoConfig,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Endpoint {
    /// `--endpoint-url PROXY` (dead upstream, every call recorded).
    Proxy,
    /// No endpoint flag (the case brings its own, or tests its absence).
    None,
}

struct Case {
    name: &'static str,
    source: Source,
    /// Global flags, before the subcommand.
    global: &'static [&'static str],
    /// The subcommand and its arguments.
    command: &'static [&'static str],
    endpoint: Endpoint,
    env: Env,
    vars: &'static [(&'static str, &'static str)],
    /// Substrings the `error:` line must contain.
    says: &'static [&'static str],
    /// Input that is wrong before any AWS call: the proxy must record none.
    zero_calls: bool,
}

const UP: &[&str] = &["up", "--artifact", "ZIP"];

const fn cfg(name: &'static str, o: &'static [(&'static str, &'static str)], says: &'static [&'static str]) -> Case {
    Case {
        name,
        source: Source::Overrides(o),
        global: &[],
        command: UP,
        endpoint: Endpoint::Proxy,
        env: Env::Testing,
        vars: &[],
        says,
        zero_calls: true,
    }
}

const fn flag(
    name: &'static str,
    global: &'static [&'static str],
    command: &'static [&'static str],
    says: &'static [&'static str],
) -> Case {
    Case { global, command, ..cfg(name, &[], says) }
}

/// A config without dummy credentials: the environment decides.
const NO_DUMMY: &[(&str, &str)] = &[("aws.dummy_credentials", REMOVE)];

const CASES: &[Case] = &[
    // ------------------------------------------------------------ the file and its keys
    Case { source: Source::Missing, ..cfg("missing file", &[], &["does-not-exist.toml"]) },
    Case {
        source: Source::Text("stack = \"x\"\n[network\nvpc_cidr = 1\n"),
        ..cfg("TOML syntax error", &[], &["FILE"])
    },
    cfg("unknown top-level key", &[("colour", "\"blue\"")], &["FILE", "colour"]),
    cfg("unknown nested key", &[("network.vpc_cdir", "\"10.1.0.0/16\"")], &["FILE", "network.vpc_cdir"]),
    cfg("unknown key in [aws]", &[("aws.proflie", "\"dev\"")], &["FILE", "aws.proflie"]),
    cfg("wrong type", &[("function.memory_mb", "\"lots\"")], &["FILE", "function.memory_mb"]),
    cfg("missing stack", &[("stack", REMOVE)], &["FILE", "stack"]),
    cfg("bad stack name", &[("stack", "\"Movies_Dev\"")], &["FILE", "stack", "Movies_Dev"]),
    cfg("stack name too long", &[("stack", "\"abcdefghijklmnopqrstuvwxyz0123456\"")], &["FILE", "stack"]),
    cfg("vpc_cidr /8", &[("network.vpc_cidr", "\"10.0.0.0/8\"")], &["FILE", "network.vpc_cidr"]),
    cfg("vpc_cidr not a CIDR", &[("network.vpc_cidr", "\"banana\"")], &["FILE", "network.vpc_cidr"]),
    cfg("az_count 0", &[("network.az_count", "0")], &["FILE", "network.az_count"]),
    cfg("empty table name", &[("table.name", "\"\"")], &["FILE", "table.name"]),
    cfg("bad architecture", &[("function.architecture", "\"mips\"")], &["FILE", "function.architecture"]),
    cfg("memory below 128 MB", &[("function.memory_mb", "64")], &["FILE", "function.memory_mb"]),
    cfg("timeout 0", &[("function.timeout_seconds", "0")], &["FILE", "function.timeout_seconds"]),
    cfg("retention 366", &[("logs.retention_days", "366")], &["FILE", "logs.retention_days"]),
    cfg(
        "burst below rate",
        &[("usage_plans.standard.rate_limit", "100.0"), ("usage_plans.standard.burst_limit", "50")],
        &["FILE", "usage_plans.standard.burst_limit"],
    ),
    cfg("quota 0", &[("usage_plans.premium.quota_limit", "0")], &["FILE", "usage_plans.premium.quota_limit"]),
    cfg(
        "quota period YEAR",
        &[("usage_plans.standard.quota_period", "\"YEAR\"")],
        &["FILE", "usage_plans.standard.quota_period"],
    ),
    cfg("WAF rate limit below 10", &[("waf.rate_limit_per_5min", "9")], &["FILE", "waf.rate_limit_per_5min", "10 to"]),
    cfg(
        "WAF rate limit above 2,000,000,000",
        &[("waf.rate_limit_per_5min", "2000000001")],
        &["FILE", "waf.rate_limit_per_5min", "2000000001"],
    ),
    cfg("WAF enabled not a boolean", &[("waf.enabled", "\"yes\"")], &["FILE", "waf.enabled"]),
    cfg("unknown key in [waf]", &[("waf.rate_limit", "100")], &["FILE", "waf.rate_limit"]),
    // ------------------------------------------------------------ network
    cfg(
        "vpc_cidr with host bits",
        &[("network.vpc_cidr", "\"10.1.2.0/16\"")],
        &["FILE", "network.vpc_cidr", "host bits"],
    ),
    cfg("vpc_cidr /25 (too small)", &[("network.vpc_cidr", "\"10.1.0.0/25\"")], &["FILE", "network.vpc_cidr", "/25"]),
    cfg("vpc_cidr IPv6", &[("network.vpc_cidr", "\"fd00:1::/56\"")], &["FILE", "network.vpc_cidr"]),
    cfg("vpc_cidr octet > 255", &[("network.vpc_cidr", "\"10.300.0.0/16\"")], &["FILE", "network.vpc_cidr"]),
    cfg("vpc_cidr without prefix", &[("network.vpc_cidr", "\"10.1.0.0\"")], &["FILE", "network.vpc_cidr"]),
    cfg("subnet as large as the VPC", &[("network.subnet_prefix", "16")], &["FILE", "network.subnet_prefix"]),
    cfg("subnet /29 (too small)", &[("network.subnet_prefix", "29")], &["FILE", "network.subnet_prefix"]),
    cfg(
        "subnets overlap (6 /26 in a /24)",
        &[("network.vpc_cidr", "\"10.1.0.0/24\""), ("network.subnet_prefix", "26"), ("network.az_count", "6")],
        &["FILE", "network.subnet_prefix"],
    ),
    cfg("az_count 7", &[("network.az_count", "7")], &["FILE", "network.az_count"]),
    cfg("az_count negative", &[("network.az_count", "-1")], &["FILE", "network.az_count"]),
    cfg("az_count float", &[("network.az_count", "2.5")], &["FILE", "network.az_count"]),
    cfg("subnet_prefix as a string", &[("network.subnet_prefix", "\"24\"")], &["FILE", "network.subnet_prefix"]),
    // ------------------------------------------------------------ [aws]
    cfg("aws.region not a region", &[("aws.region", "\"mars-1\"")], &["FILE", "aws.region", "mars-1"]),
    cfg("aws.region in capitals", &[("aws.region", "\"US-EAST-1\"")], &["FILE", "aws.region"]),
    cfg(
        "aws.endpoint_url without scheme",
        &[("aws.endpoint_url", "\"localhost:5055\"")],
        &["FILE", "aws.endpoint_url"],
    ),
    cfg("aws.profile empty", &[("aws.profile", "\"\"")], &["FILE", "aws.profile"]),
    Case {
        endpoint: Endpoint::None,
        ..cfg(
            "aws.endpoint_url plain http to another machine",
            &[("aws.endpoint_url", "\"http://aws.example.com:4566\"")],
            &["FILE", "aws.endpoint_url", "--allow-insecure-endpoint"],
        )
    },
    cfg(
        "aws.dummy_credentials not a bool",
        &[("aws.dummy_credentials", "\"yes\"")],
        &["FILE", "aws.dummy_credentials"],
    ),
    Case {
        endpoint: Endpoint::None,
        ..cfg("dummy credentials without an endpoint", &[], &["FILE", "aws.dummy_credentials", "endpoint"])
    },
    // ------------------------------------------------------------ stack name
    cfg("stack starts with a digit", &[("stack", "\"1movies\"")], &["FILE", "stack", "1movies"]),
    cfg("stack ends with a dash", &[("stack", "\"movies-\"")], &["FILE", "stack"]),
    cfg("stack with a slash", &[("stack", "\"movies/dev\"")], &["FILE", "stack", "movies/dev"]),
    cfg("stack with a space", &[("stack", "\"movies dev\"")], &["FILE", "stack"]),
    cfg("stack with a dot", &[("stack", "\"movies.dev\"")], &["FILE", "stack"]),
    cfg("stack not ASCII", &[("stack", "\"mövies\"")], &["FILE", "stack"]),
    cfg("stack empty", &[("stack", "\"\"")], &["FILE", "stack"]),
    cfg("stack a number", &[("stack", "42")], &["FILE", "stack"]),
    // ------------------------------------------------------------ table, function, api, logs
    cfg("table name of 2 chars", &[("table.name", "\"ab\"")], &["FILE", "table.name"]),
    cfg("table name with a space", &[("table.name", "\"my table\"")], &["FILE", "table.name"]),
    cfg("function name with a dot", &[("function.name", "\"my.fn\"")], &["FILE", "function.name"]),
    cfg(
        "function name of 65 chars",
        &[("function.name", "\"f1234567890123456789012345678901234567890123456789012345678901234\"")],
        &["FILE", "function.name"],
    ),
    cfg("memory 10241 MB", &[("function.memory_mb", "10241")], &["FILE", "function.memory_mb"]),
    cfg("timeout 901 s", &[("function.timeout_seconds", "901")], &["FILE", "function.timeout_seconds"]),
    cfg("[function] is a string", &[("function", "\"apigw_handler\"")], &["FILE", "function"]),
    cfg("stage with a space", &[("api.stage", "\"a b\"")], &["FILE", "api.stage"]),
    cfg("stage empty", &[("api.stage", "\"\"")], &["FILE", "api.stage"]),
    cfg("retention 0", &[("logs.retention_days", "0")], &["FILE", "logs.retention_days"]),
    // ------------------------------------------------------------ usage plans
    cfg("rate_limit 0", &[("usage_plans.standard.rate_limit", "0.0")], &["FILE", "usage_plans.standard.rate_limit"]),
    cfg(
        "rate_limit above the account limit",
        &[("usage_plans.premium.rate_limit", "20000.0"), ("usage_plans.premium.burst_limit", "30000")],
        &["FILE", "usage_plans.premium.rate_limit"],
    ),
    cfg(
        "burst_limit a float",
        &[("usage_plans.standard.burst_limit", "100.5")],
        &["FILE", "usage_plans.standard.burst_limit"],
    ),
    cfg("plan name empty", &[("usage_plans.premium.name", "\"\"")], &["FILE", "usage_plans.premium.name"]),
    cfg(
        "plan name of 65 chars",
        &[("usage_plans.standard.name", "\"S1234567890123456789012345678901234567890123456789012345678901234\"")],
        &["FILE", "usage_plans.standard.name"],
    ),
    cfg(
        "quota period in lowercase",
        &[("usage_plans.premium.quota_period", "\"day\"")],
        &["FILE", "usage_plans.premium.quota_period"],
    ),
    cfg(
        "plan without quota_period",
        &[("usage_plans.standard.quota_period", REMOVE)],
        &["FILE", "usage_plans.standard.quota_period"],
    ),
    cfg("unknown key in a plan", &[("usage_plans.premium.colour", "\"red\"")], &["FILE", "usage_plans.premium.colour"]),
    // ------------------------------------------------------------ alarms, concurrency, stage throttling
    cfg(
        "reserved concurrency 0",
        &[("function.reserved_concurrency", "0")],
        &["FILE", "function.reserved_concurrency", "at least 1"],
    ),
    cfg("throttle rate without burst", &[("api.throttle_rate", "100.0")], &["FILE", "api.throttle_burst", "both"]),
    cfg(
        "throttle rate below the premium plan",
        &[("api.throttle_rate", "60.0"), ("api.throttle_burst", "200")],
        &["FILE", "api.throttle_rate", "premium usage plan"],
    ),
    cfg(
        "throttle burst below the premium plan",
        &[("api.throttle_rate", "100.0"), ("api.throttle_burst", "150")],
        &["FILE", "api.throttle_burst", "premium usage plan"],
    ),
    cfg("latency bound 0", &[("alarms.latency_p99_ms", "0")], &["FILE", "alarms.latency_p99_ms"]),
    cfg(
        "SNS topic ARN of a queue",
        &[("alarms.sns_topic_arn", "\"arn:aws:sqs:us-east-1:123456789012:ops\"")],
        &["FILE", "alarms.sns_topic_arn", "SNS topic ARN"],
    ),
    cfg("alarms.enabled a string", &[("alarms.enabled", "\"yes\"")], &["FILE", "alarms.enabled"]),
    // ------------------------------------------------------------ the file itself
    Case { source: Source::Text("stack = \"a\"\nstack = \"b\"\n"), ..cfg("duplicate key", &[], &["FILE", "stack"]) },
    Case { source: Source::Text(""), ..cfg("empty file", &[], &["FILE", "stack"]) },
    Case { source: Source::Bytes(b"stack = \"\xff\xfe\"\n"), ..cfg("not UTF-8", &[], &["FILE"]) },
    Case { source: Source::Dir, ..cfg("--config is a folder", &[], &["cfgdir"]) },
    Case { source: Source::NoConfig, ..flag("--env with a path", &["--env", "../etc"], UP, &["--env", "../etc"]) },
    // ------------------------------------------------------------ flags
    Case {
        endpoint: Endpoint::None,
        ..flag(
            "--endpoint-url without scheme",
            &["--endpoint-url", "localhost:5055"],
            UP,
            &["--endpoint-url", "localhost:5055"],
        )
    },
    Case {
        endpoint: Endpoint::None,
        ..flag(
            "--endpoint-url plain http to another machine",
            &["--endpoint-url", "http://10.9.8.7:4566"],
            UP,
            &["--endpoint-url", "http://10.9.8.7:4566", "--allow-insecure-endpoint"],
        )
    },
    flag(
        "smoke --url plain http to another machine",
        &[],
        &["smoke", "--url", "http://api.example.com/"],
        &["--url", "https://"],
    ),
    flag(
        "up --smoke-url plain http to another machine",
        &[],
        &["up", "--artifact", "ZIP", "--smoke", "--smoke-url", "http://api.example.com/"],
        &["--smoke-url", "https://"],
    ),
    flag("--lock-lease 5", &[], &["up", "--artifact", "ZIP", "--lock-lease", "5"], &["--lock-lease"]),
    // ------------------------------------------------------------ deploys (`[deploy]`, --watch)
    cfg("canary_percent 100", &[("deploy.canary_percent", "100")], &["FILE", "deploy.canary_percent", "found 100"]),
    cfg("interval_seconds 0", &[("deploy.interval_seconds", "0")], &["FILE", "deploy.interval_seconds"]),
    cfg("keep_versions 0", &[("deploy.keep_versions", "0")], &["FILE", "deploy.keep_versions"]),
    cfg("unknown strategy", &[("deploy.strategy", "\"blue-green\"")], &["FILE", "deploy.strategy", "blue-green"]),
    flag("up --watch --artifact", &[], &["up", "--artifact", "ZIP", "--watch"], &["--watch --artifact"]),
    Case {
        command: &["up", "--watch"],
        ..cfg(
            "up --watch with a canary strategy",
            &[("deploy.strategy", "\"canary\"")],
            &["--watch", "FILE", "deploy.strategy", "canary"],
        )
    },
    flag("rollback --to not a number", &[], &["rollback", "--to", "latest"], &["--to", "latest"]),
    flag("--region empty", &["--region", ""], UP, &["--region"]),
    flag("--profile empty", &["--profile", ""], UP, &["--profile"]),
    flag("--output in capitals", &["--output", "JSON"], UP, &["--output", "JSON"]),
    flag("--concurrency 0", &[], &["up", "--artifact", "ZIP", "--concurrency", "0"], &["--concurrency"]),
    flag("--concurrency 65", &[], &["up", "--artifact", "ZIP", "--concurrency", "65"], &["--concurrency", "65"]),
    flag(
        "--concurrency not a number",
        &[],
        &["up", "--artifact", "ZIP", "--concurrency", "eight"],
        &["--concurrency", "eight"],
    ),
    flag("--lock-timeout 3601", &[], &["up", "--artifact", "ZIP", "--lock-timeout", "3601"], &["--lock-timeout"]),
    flag("--lock-timeout negative", &[], &["up", "--artifact", "ZIP", "--lock-timeout=-1"], &["--lock-timeout"]),
    flag("--artifact not a zip", &[], &["up", "--artifact", "NOTZIP"], &["--artifact", "not a zip"]),
    flag("--artifact without bootstrap", &[], &["up", "--artifact", "NOBOOT"], &["--artifact", "bootstrap"]),
    flag(
        "--artifact missing",
        &[],
        &["up", "--artifact", "/nonexistent/handler.zip"],
        &["--artifact", "/nonexistent/handler.zip"],
    ),
    flag("plan --artifact not a zip", &[], &["plan", "--artifact", "NOTZIP"], &["--artifact", "not a zip"]),
    // ------------------------------------------------------------ top
    flag("top --interval 0", &[], &["top", "--interval", "0"], &["--interval", "0"]),
    flag("top --interval 301", &[], &["top", "--interval", "301"], &["--interval", "301"]),
    flag("top --interval not a number", &[], &["top", "--interval", "5s"], &["--interval", "5s"]),
    flag("top --local without a serve", &[], &["top", "--local", "--once"], &["--local", "no `movies-stack serve`"]),
    flag("unknown subcommand", &[], &["deploy"], &["deploy"]),
    flag("down without --yes (stdin not a TTY)", &[], &["down"], &["--yes"]),
    flag("down --eni-timeout 0", &[], &["down", "--yes", "--eni-timeout", "0"], &["--eni-timeout"]),
    flag("keys --tier gold", &[], &["keys", "--tier", "gold"], &["--tier", "gold"]),
    // `traces` (issue 22): its flags are refused before any call.
    flag("traces --id not a trace id", &[], &["traces", "--id", "1-abc"], &["--id", "1-abc", "trace id"]),
    flag("traces --since beyond retention", &[], &["traces", "--since", "40d"], &["--since 40d", "30 days"]),
    flag("traces --map --since 7h", &[], &["traces", "--map", "--since", "7h"], &["--since 7h", "--map"]),
    flag("traces --slowest 0", &[], &["traces", "--slowest", "0"], &["--slowest", "0"]),
    flag("traces --map --errors", &[], &["traces", "--map", "--errors"], &["--map", "--errors"]),
    flag("package without --out", &[], &["package"], &["--out"]),
    Case { source: Source::NoConfig, ..flag("unknown env name", &["--env", "nosuchenv"], UP, &["nosuchenv"]) },
    flag("bad --region", &["--region", "moon-base-x"], UP, &["moon-base-x"]),
    flag("--output yaml", &["--output", "yaml"], UP, &["--output", "yaml"]),
    flag("--env together with --config", &["--env", "local"], UP, &["--env", "--config"]),
    flag("unknown up flag", &[], &["up", "--artifact", "ZIP", "--artefact"], &["--artefact"]),
    // ------------------------------------------------------------ environment
    Case {
        endpoint: Endpoint::None,
        vars: &[("AWS_ENDPOINT_URL", "ftp://127.0.0.1:21")],
        ..flag("AWS_ENDPOINT_URL not http", &[], UP, &["AWS_ENDPOINT_URL", "ftp://127.0.0.1:21"])
    },
    Case {
        vars: &[("MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP", "fast")],
        ..flag("quota speed-up not a number", &[], UP, &["MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP", "1 to 1000"])
    },
    Case {
        endpoint: Endpoint::None,
        vars: &[("MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP", "10")],
        ..cfg("quota speed-up against AWS", NO_DUMMY, &["MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP", "only for an emulator"])
    },
    Case {
        vars: &[("AWS_REGION", "moon-base-x")],
        ..flag("AWS_REGION not a region", &[], UP, &["AWS_REGION", "moon-base-x"])
    },
    Case {
        env: Env::Empty,
        vars: &[("AWS_EC2_METADATA_DISABLED", "true")],
        ..cfg("no credentials anywhere", NO_DUMMY, &["credentials"])
    },
    Case {
        env: Env::Empty,
        global: &["--profile", "nope"],
        vars: &[
            ("AWS_CONFIG_FILE", "EMPTY"),
            ("AWS_SHARED_CREDENTIALS_FILE", "EMPTY"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        ..cfg("--profile unknown", NO_DUMMY, &["nope"])
    },
    Case {
        env: Env::Empty,
        vars: &[
            ("AWS_PROFILE", "nope-from-env"),
            ("AWS_CONFIG_FILE", "EMPTY"),
            ("AWS_SHARED_CREDENTIALS_FILE", "EMPTY"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        ..cfg("AWS_PROFILE unknown", NO_DUMMY, &["nope-from-env"])
    },
    Case {
        env: Env::Empty,
        vars: &[
            ("AWS_CONFIG_FILE", "EMPTY"),
            ("AWS_SHARED_CREDENTIALS_FILE", "EMPTY"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        ..cfg("aws.profile unknown", &[("aws.dummy_credentials", REMOVE), ("aws.profile", "\"ghost\"")], &["ghost"])
    },
    Case {
        env: Env::Empty,
        vars: &[("AWS_CONFIG_FILE", "EMPTY"), ("AWS_EC2_METADATA_DISABLED", "true")],
        ..cfg("no region anywhere", &[("aws.region", REMOVE)], &["region", "--region"])
    },
    Case {
        endpoint: Endpoint::None,
        global: &["--endpoint-url", "REFUSED"],
        zero_calls: false,
        ..flag("endpoint refuses connections", &[], UP, &["cannot reach AWS", "REFUSED"])
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corpus_exits_3_names_the_cause_and_calls_nothing() {
    let t0 = std::time::Instant::now();
    let proxy = Proxy::start(&format!("http://127.0.0.1:{}", free_port()));
    let dir = TempDir::new("inerr");
    let zip = write_fake(&dir.path().join("fake-handler.zip")).display().to_string();
    let notzip = dir.path().join("not-a-zip.zip");
    std::fs::write(&notzip, "this is text, not a zip\n").unwrap();
    let noboot = dir.path().join("no-bootstrap.zip");
    {
        // A zip whose only entry is not `bootstrap`.
        let bytes = zip_with_bootstrap(b"x");
        let renamed = rename_entry(&bytes, b"bootstrap", b"handler.x");
        std::fs::write(&noboot, renamed).unwrap();
    }
    let empty = dir.path().join("empty-aws-config");
    std::fs::write(&empty, "").unwrap();
    std::fs::create_dir_all(dir.path().join("cfgdir")).unwrap();
    let refused = format!("http://127.0.0.1:{}", free_port());
    let names = StackNames::unique("inerr");
    let subst: HashMap<&str, String> = HashMap::from([
        ("ZIP", zip.clone()),
        ("NOTZIP", notzip.display().to_string()),
        ("NOBOOT", noboot.display().to_string()),
        ("EMPTY", empty.display().to_string()),
        ("PROXY", proxy.url().to_string()),
        ("REFUSED", refused.clone()),
    ]);
    let sub = |s: &str| subst.get(s).cloned().unwrap_or_else(|| s.to_string());
    let mut c = Checks::new();
    let mut zero_call_cases = 0;

    for (i, case) in CASES.iter().enumerate() {
        let file_name = format!("case-{:03}.toml", i + 1);
        let path = dir.path().join(&file_name);
        let written = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            Some(path.clone())
        };
        let config = match case.source {
            Source::Overrides(o) => Some(write_config_file(&path, &names, o)),
            Source::Text(t) => written(t.as_bytes()),
            Source::Bytes(b) => written(b),
            Source::Dir => Some(dir.path().join("cfgdir")),
            Source::Missing => Some(dir.path().join("does-not-exist.toml")),
            Source::NoConfig => None,
        };
        let mut args: Vec<String> = Vec::new();
        if let Some(config) = config {
            args.extend(["--config".into(), config.display().to_string()]);
        }
        if case.endpoint == Endpoint::Proxy {
            args.extend(["--endpoint-url".into(), proxy.url().to_string()]);
        }
        args.extend(case.global.iter().map(|s| sub(s)));
        args.extend(case.command.iter().map(|s| sub(s)));
        let mut d = Deployer::new();
        d.env = case.vars.iter().map(|(k, v)| (k.to_string(), sub(v))).collect();

        proxy.reset();
        let out = Running::spawn_raw(&d, &args, case.env).wait().await;
        let calls = proxy.calls();
        let label = format!("case {:03} \"{}\"", i + 1, case.name);
        let first = error_block(&out.stderr);
        let mut ok = c.check(out.code == 3, format!("{label}: exit code {} (expected 3)\n{out}", out.code));
        for want in case.says {
            let want = if *want == "FILE" { file_name.clone() } else { sub(want) };
            ok &= c.check(first.contains(&want), format!("{label}: the error lacks {want:?}: {first:?}\n{out}"));
        }
        if case.zero_calls {
            zero_call_cases += 1;
            ok &= c.check(calls.is_empty(), format!("{label}: {} AWS calls were made: {calls:?}", calls.len()));
        }
        println!(
            "{} {label}: exit {} in {:.1}s, {} AWS calls; {}",
            if ok { "ok  " } else { "FAIL" },
            out.code,
            out.elapsed.as_secs_f64(),
            calls.len(),
            first.lines().next().unwrap_or_default().chars().take(220).collect::<String>()
        );
    }
    println!("bad-input corpus: {} cases ({zero_call_cases} checked for zero AWS calls)", CASES.len());

    // Control: the unmodified base config gets past validation and does talk to AWS, which
    // proves the zero-call checks above could have failed.
    let path = write_config_file(&dir.path().join("control.toml"), &names, &[]);
    proxy.reset();
    let out = Deployer::with(&path, proxy.url()).run(&["up", "--artifact", &zip]).await;
    c.check(!proxy.calls().is_empty(), format!("control: the valid base config made AWS calls\n{out}"));
    c.check(out.code != 0, format!("control: up against a dead endpoint fails\n{out}"));
    println!("control (valid config, dead endpoint): exit {}, {} AWS calls", out.code, proxy.calls().len());
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish(&format!("bad input corpus ({} cases + control)", CASES.len()));
}

/// The first `error` line of stderr and the indented lines after it (clap puts the missing
/// argument's name on the next line; the SDK lists the credential providers it tried).
fn error_block(stderr: &str) -> String {
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("error"));
    let mut block: Vec<&str> = lines.next().into_iter().collect();
    block.extend(lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')));
    block.join("\n")
}

/// Rename the one entry of a zip made by `zip_with_bootstrap` (same length names only).
fn rename_entry(zip: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = zip.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Name collisions: resources with our names that we do not own.

/// `up` of a stack whose `name` someone else's resource already has: exit 1, and an error line
/// that names it and says it is not ours.
async fn up_refuses_foreign(c: &mut Checks, what: &str, stack: &Stack, name: &str) {
    let out = stack.deployer.run(&["up", "--artifact", &stack.artifact]).await;
    let errors: String = out.stderr.lines().filter(|l| l.starts_with("error")).collect::<Vec<_>>().join("\n");
    println!("{what}: exit {}; {}", out.code, errors);
    c.eq(&format!("{what}: exit code"), out.code, 1);
    c.check(
        errors.contains(name) && errors.contains("not tagged"),
        format!("{what}: the error names {name} and says it is not ours\n{out}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_collisions_fail_name_the_resource_and_touch_nothing() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let (aws, proxy) = (&account.aws, &account.proxy);
    let mut c = Checks::new();

    // ------------------------------------------------ a DynamoDB table with our table's name
    let stack = account.stack("coll-table");
    let n = &stack.names;
    aws.dynamodb
        .create_table()
        .table_name(&n.table)
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
            ProvisionedThroughput::builder().read_capacity_units(1).write_capacity_units(1).build().unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("pk").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .expect("CreateTable (someone else's)");
    proxy.reset();
    up_refuses_foreign(&mut c, "foreign table", &stack, &n.table).await;
    let touched: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|c| c.service == "dynamodb" && c.mutating && c.table.as_deref() == Some(n.table.as_str()))
        .map(|c| c.to_string())
        .collect();
    c.check(touched.is_empty(), format!("foreign table: no mutating call on it: {touched:?}"));
    let t = aws.dynamodb.describe_table().table_name(&n.table).send().await.expect("DescribeTable");
    let t = t.table().expect("table");
    c.eq(
        "foreign table: billing unchanged",
        t.billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_string())
            .unwrap_or("PROVISIONED".into()),
        "PROVISIONED".to_string(),
    );
    c.check(t.deletion_protection_enabled() != Some(true), "foreign table: deletion protection not switched on");
    c.check(t.stream_specification().is_none_or(|s| !s.stream_enabled()), "foreign table: no stream added");
    let tags = aws.dynamodb.list_tags_of_resource().resource_arn(t.table_arn().unwrap_or_default()).send().await;
    c.eq("foreign table: tags", tags.map(|t| t.tags().len()).ok(), Some(0));
    let pitr = aws.pitr_status(&n.table).await;
    c.eq("foreign table: PITR unchanged", pitr.as_deref(), Some("DISABLED"));

    // ------------------------------------------------ a log group with our access-log group's name
    let stack = account.stack("coll-logs");
    let group = Shape::of(&stack).await.name_of("access-log-group").to_string();
    aws.logs.create_log_group().log_group_name(&group).send().await.expect("CreateLogGroup (someone else's)");
    up_refuses_foreign(&mut c, "foreign log group", &stack, &group).await;
    let g = aws.logs.describe_log_groups().log_group_name_prefix(&group).send().await.expect("DescribeLogGroups");
    let g = g.log_groups().iter().find(|g| g.log_group_name() == Some(group.as_str())).cloned().expect("the group");
    c.eq("foreign log group: retention unchanged", g.retention_in_days(), None);
    let arn = g.log_group_arn().map(str::to_string).unwrap_or_default();
    let tags = aws.logs.list_tags_for_resource().resource_arn(&arn).send().await.expect("ListTagsForResource");
    c.eq("foreign log group: tags", tags.tags().map(|t| t.len()).unwrap_or(0), 0);

    // ------------------------------------------------ an IAM role with our function role's name
    let stack = account.stack("coll-role");
    let role = Shape::of(&stack).await.name_of("function-role").to_string();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    aws.iam.create_role().role_name(&role).assume_role_policy_document(trust).send().await.expect("CreateRole");
    up_refuses_foreign(&mut c, "foreign IAM role", &stack, &role).await;
    let r = aws.iam.get_role().role_name(&role).send().await.expect("GetRole");
    let doc = e2e::proxy::percent_decode(
        r.role().map(|r| r.assume_role_policy_document().unwrap_or_default()).unwrap_or_default(),
    );
    c.check(
        doc.contains("ec2.amazonaws.com") && !doc.contains("lambda"),
        format!("foreign IAM role: trust unchanged: {doc}"),
    );
    let inline = aws.iam.list_role_policies().role_name(&role).send().await.expect("ListRolePolicies");
    c.eq("foreign IAM role: inline policies", inline.policy_names().len(), 0);
    let attached =
        aws.iam.list_attached_role_policies().role_name(&role).send().await.expect("ListAttachedRolePolicies");
    c.eq("foreign IAM role: attached policies", attached.attached_policies().len(), 0);
    let tags = aws.iam.list_role_tags().role_name(&role).send().await.expect("ListRoleTags");
    c.eq("foreign IAM role: tags", tags.tags().len(), 0);
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("name collisions (3 kinds)");
}
