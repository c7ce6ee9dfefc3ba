//! Broken configs and flags: each must fail with exit 3 (clap's own flag errors: non-zero),
//! name the file and the dotted key on stderr, and make no AWS call at all.
//!
//! The expected stderr substrings live in the table below so they are easy to adjust. `FILE`
//! stands for the case's config file name (`case-NN.toml`).

use e2e::artifact::write_fake;
use e2e::{Checks, Deployer, Proxy, REMOVE, StackNames, TempDir, free_port, write_config_file};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exit code 3 (invalid input).
    Input,
    /// A flag error from the argument parser: any non-zero exit code.
    Flag,
}

#[derive(Debug, Clone, Copy)]
enum Source {
    /// The base config with these overrides (dotted key, raw TOML value or REMOVE).
    Overrides(&'static [(&'static str, &'static str)]),
    /// This exact file content.
    Text(&'static str),
    /// `--config` pointing at a file that does not exist.
    MissingFile,
    /// No `--config`: only the given global flags (e.g. `--env NAME`).
    NoConfig,
}

struct Case {
    name: &'static str,
    source: Source,
    /// Global flags placed before the subcommand.
    flags: &'static [&'static str],
    /// Flags placed after `up --artifact <fake.zip>`.
    up_flags: &'static [&'static str],
    expect: Expect,
    /// Substrings stderr must contain; `FILE` = the config file's name.
    stderr_has: &'static [&'static str],
}

const fn case(name: &'static str, source: Source, stderr_has: &'static [&'static str]) -> Case {
    Case { name, source, flags: &[], up_flags: &[], expect: Expect::Input, stderr_has }
}

const CASES: &[Case] = &[
    case("missing file", Source::MissingFile, &["does-not-exist.toml"]),
    case("TOML syntax error", Source::Text("stack = \"x\"\n[network\nvpc_cidr = 1\n"), &["FILE"]),
    case("unknown top-level key", Source::Overrides(&[("colour", "\"blue\"")]), &["FILE", "colour"]),
    case(
        "unknown nested key",
        Source::Overrides(&[("network.vpc_cdir", "\"10.1.0.0/16\"")]),
        &["FILE", "network.vpc_cdir"],
    ),
    case("unknown key in [aws]", Source::Overrides(&[("aws.proflie", "\"dev\"")]), &["FILE", "aws.proflie"]),
    case("wrong type", Source::Overrides(&[("function.memory_mb", "\"lots\"")]), &["FILE", "function.memory_mb"]),
    case("missing stack", Source::Overrides(&[("stack", REMOVE)]), &["FILE", "stack"]),
    case("bad stack name", Source::Overrides(&[("stack", "\"Movies_Dev\"")]), &["FILE", "stack", "Movies_Dev"]),
    case(
        "stack name too long",
        Source::Overrides(&[("stack", "\"abcdefghijklmnopqrstuvwxyz0123456\"")]),
        &["FILE", "stack"],
    ),
    case("vpc_cidr /8", Source::Overrides(&[("network.vpc_cidr", "\"10.0.0.0/8\"")]), &["FILE", "network.vpc_cidr"]),
    case(
        "vpc_cidr not a CIDR",
        Source::Overrides(&[("network.vpc_cidr", "\"banana\"")]),
        &["FILE", "network.vpc_cidr"],
    ),
    case("az_count 0", Source::Overrides(&[("network.az_count", "0")]), &["FILE", "network.az_count"]),
    case("empty table name", Source::Overrides(&[("table.name", "\"\"")]), &["FILE", "table.name"]),
    case(
        "bad architecture",
        Source::Overrides(&[("function.architecture", "\"mips\"")]),
        &["FILE", "function.architecture"],
    ),
    case("memory below 128 MB", Source::Overrides(&[("function.memory_mb", "64")]), &["FILE", "function.memory_mb"]),
    case("timeout 0", Source::Overrides(&[("function.timeout_seconds", "0")]), &["FILE", "function.timeout_seconds"]),
    case("retention 366", Source::Overrides(&[("logs.retention_days", "366")]), &["FILE", "logs.retention_days"]),
    case(
        "burst below rate",
        Source::Overrides(&[("usage_plans.standard.rate_limit", "100.0"), ("usage_plans.standard.burst_limit", "50")]),
        &["FILE", "usage_plans.standard.burst_limit"],
    ),
    case(
        "quota 0",
        Source::Overrides(&[("usage_plans.premium.quota_limit", "0")]),
        &["FILE", "usage_plans.premium.quota_limit"],
    ),
    case(
        "quota period YEAR",
        Source::Overrides(&[("usage_plans.standard.quota_period", "\"YEAR\"")]),
        &["FILE", "usage_plans.standard.quota_period"],
    ),
    Case { flags: &["--env", "nosuchenv"], ..case("unknown env name", Source::NoConfig, &["nosuchenv"]) },
    Case { flags: &["--region", "moon-base-x"], ..case("bad --region", Source::Overrides(&[]), &["moon-base-x"]) },
    Case {
        flags: &["--output", "yaml"],
        expect: Expect::Flag,
        ..case("--output yaml", Source::Overrides(&[]), &["--output", "yaml"])
    },
    Case {
        flags: &["--env", "local"],
        expect: Expect::Flag,
        ..case("--env together with --config", Source::Overrides(&[]), &["--env", "--config"])
    },
    Case {
        up_flags: &["--artefact"],
        expect: Expect::Flag,
        ..case("unknown up flag", Source::Overrides(&[]), &["--artefact"])
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_configs_and_flags_fail_before_any_aws_call() {
    // Nothing listens upstream: a call that gets through would fail anyway, but it is recorded.
    let proxy = Proxy::start(&format!("http://127.0.0.1:{}", free_port()));
    let dir = TempDir::new("cfgerr");
    let fake = write_fake(&dir.path().join("fake-handler.zip"));
    let fake = fake.to_str().unwrap();
    let names = StackNames::unique("cfgerr");
    let mut c = Checks::new();

    for (i, case) in CASES.iter().enumerate() {
        let file_name = format!("case-{:02}.toml", i + 1);
        let path = dir.path().join(&file_name);
        let mut args: Vec<String> = Vec::new();
        match case.source {
            Source::Overrides(o) => {
                write_config_file(&path, &names, o);
                args.extend(["--config".into(), path.display().to_string()]);
            }
            Source::Text(t) => {
                std::fs::write(&path, t).unwrap();
                args.extend(["--config".into(), path.display().to_string()]);
            }
            Source::MissingFile => {
                args.extend(["--config".into(), dir.path().join("does-not-exist.toml").display().to_string()]);
            }
            Source::NoConfig => {}
        }
        args.extend(["--endpoint-url".to_string(), proxy.url().to_string()]);
        args.extend(case.flags.iter().map(|s| s.to_string()));
        args.extend(["up".to_string(), "--artifact".to_string(), fake.to_string()]);
        args.extend(case.up_flags.iter().map(|s| s.to_string()));

        proxy.reset();
        let out = Deployer::new().run_raw(&args).await;
        let calls = proxy.calls();
        let label = format!("case {:02} \"{}\"", i + 1, case.name);
        let mut ok = match case.expect {
            Expect::Input => c.check(out.code == 3, format!("{label}: exit code {} (expected 3)\n{out}", out.code)),
            Expect::Flag => c.check(out.code != 0, format!("{label}: exit code 0 (expected non-zero)\n{out}")),
        };
        for want in case.stderr_has {
            let want = if *want == "FILE" { file_name.as_str() } else { want };
            ok &= c.check(out.stderr.contains(want), format!("{label}: stderr lacks {want:?}\n{out}"));
        }
        ok &= c.check(calls.is_empty(), format!("{label}: {} AWS calls were made: {calls:?}", calls.len()));
        println!(
            "{} {label}: exit {}, {} AWS calls; stderr: {}",
            if ok { "ok  " } else { "FAIL" },
            out.code,
            calls.len(),
            out.stderr.trim().lines().next().unwrap_or("")
        );
    }

    // Control: the unmodified base config gets past validation and does talk to AWS, which
    // proves the zero-call assertions above could have failed.
    let path = write_config_file(&dir.path().join("control.toml"), &names, &[]);
    proxy.reset();
    let out = Deployer::with(&path, proxy.url()).run(&["up", "--artifact", fake]).await;
    c.check(!proxy.calls().is_empty(), format!("control: the valid base config made AWS calls\n{out}"));
    c.check(out.code != 0, format!("control: up against a dead endpoint fails\n{out}"));
    println!("control (valid config, dead endpoint): exit {}, {} AWS calls", out.code, proxy.calls().len());

    c.finish(&format!("config errors ({} cases + control)", CASES.len()));
}
