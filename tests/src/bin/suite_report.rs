//! The strict model's suite report: reads the records every proxy appended to
//! `$MOVIES_STACK_SUITE_DIR` (or the folder given as the first argument) and prints the
//! operations the suite exercised, how often each behaviour of the model acted, which tests
//! turned a behaviour off and why, and the patterns the model could not check.
//!
//! Then the IAM policy's coverage: every operation the movies-stack binary sent maps to an action
//! that `movies-stack iam-policy` allows, and the policy allows nothing the suite never needed
//! (besides the listed exceptions, `e2e::iam_coverage::NOT_CALLED`). The policy is printed for
//! `config/prod.toml` (every optional resource on) by the deployer binary (`$MOVIES_STACK_BIN`).
//!
//! Exits 1 when an operation went unvalidated, the policy denies a needed action or allows an
//! unneeded one, or no record was found; 2 when the records or the policy cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use e2e::strict::report::{SUITE_DIR_ENV, Summary, read_all};
use e2e::{Behaviour, deployer_bin, iam_coverage, repo_root};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).or_else(|| std::env::var_os(SUITE_DIR_ENV)).map(PathBuf::from) else {
        eprintln!("usage: suite_report <dir>   (or set {SUITE_DIR_ENV})");
        return ExitCode::from(2);
    };
    let records = match read_all(&dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("suite_report: {e}");
            return ExitCode::from(2);
        }
    };
    let s = Summary::of(&records);
    println!("strict AWS model: {} proxy records in {}", s.records, dir.display());
    println!();
    println!("{:<16} {:<36} {:>7} {:>9} {:>7}", "service", "operation", "calls", "validated", "refused");
    for ((service, operation), (calls, validated, refused)) in &s.operations {
        println!("{service:<16} {operation:<36} {calls:>7} {validated:>9} {refused:>7}");
    }
    println!();
    let width = Behaviour::ALL.iter().map(|b| b.name().len()).max().unwrap_or(0);
    println!("{:<width$} {:>7}", "behaviour", "hits");
    for b in Behaviour::ALL {
        println!("{:<width$} {:>7}", b.name(), s.behaviours.get(b.name()).copied().unwrap_or(0));
    }
    for (b, tests) in &s.disabled {
        println!();
        println!("{b} turned off by {} test(s):", tests.len());
        for (test, why) in tests {
            println!("  {test}: {why}");
        }
    }
    if !s.not_checkable.is_empty() {
        println!();
        println!("patterns the model cannot check ({}):", s.not_checkable.len());
        for n in &s.not_checkable {
            println!("  {} {}: {} ({})", n.service, n.shape, n.pattern, n.reason);
        }
    }
    let unvalidated = s.unvalidated();
    if records.is_empty() {
        eprintln!("FAIL: no strict-model record in {}: did the suite run with {SUITE_DIR_ENV} set?", dir.display());
        return ExitCode::from(1);
    }
    if !unvalidated.is_empty() {
        eprintln!("FAIL: {} operation(s) went unvalidated:", unvalidated.len());
        for u in &unvalidated {
            eprintln!("  {u}");
        }
        return ExitCode::from(1);
    }
    println!();
    println!("every operation the suite sent ({}) was validated against AWS's service model", s.operations.len());
    let authorized = authorization(&records);
    let covered = iam_policy_coverage(&s);
    if authorized { covered } else { ExitCode::from(1) }
}

/// What the authorization behaviour saw: every request of the movies-stack binary evaluated
/// against the policy it printed for its stack, by action, resource and condition keys. False
/// when one was denied or its resources could not be computed.
fn authorization(records: &[e2e::strict::Record]) -> bool {
    use std::collections::{BTreeMap, BTreeSet};
    let mut evaluated = 0;
    let mut allowed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unevaluated: BTreeMap<String, usize> = BTreeMap::new();
    let mut denied = BTreeSet::new();
    let mut unresolved = BTreeSet::new();
    for r in records {
        let a = &r.authorization;
        evaluated += a.evaluated;
        for (action, n) in &a.allowed {
            *allowed.entry(action).or_insert(0) += n;
        }
        if a.unevaluated > 0 {
            *unevaluated.entry(format!("{} {}", r.binary, r.test)).or_insert(0) += a.unevaluated;
        }
        denied.extend(a.denied.iter().map(|d| (d.clone(), format!("{} {}", r.binary, r.test))));
        unresolved.extend(a.unresolved.iter().cloned());
    }
    println!();
    println!(
        "authorization: {evaluated} requests of the movies-stack binary evaluated against the policy it prints for its \
         stack (action, resource, condition keys); authorization requests allowed, by action:"
    );
    for (action, n) in &allowed {
        println!("  {action:<44} {n:>6}");
    }
    if !unevaluated.is_empty() {
        println!("requests sent through a proxy that no deployer run registered a policy with (not evaluated):");
        for (test, n) in &unevaluated {
            println!("  {test}: {n}");
        }
    }
    for (d, test) in &denied {
        eprintln!(
            "FAIL: denied ({}): {} needs {} on {} [{}] ({test})",
            d.why,
            d.operation,
            d.action,
            d.resource,
            d.context.join(", ")
        );
    }
    for u in &unresolved {
        eprintln!("FAIL: the strict model cannot compute what AWS authorizes for {u}");
    }
    denied.is_empty() && unresolved.is_empty()
}

/// The printed policy against what the binary sent.
fn iam_policy_coverage(s: &Summary) -> ExitCode {
    let config = repo_root().join("config/prod.toml");
    let out = std::process::Command::new(deployer_bin())
        .arg("--config")
        .arg(&config)
        .args(["--region", "us-east-1", "iam-policy", "--account", "123456789012"])
        .env_remove("AWS_PROFILE")
        .output();
    let policy: serde_json::Value = match out {
        Ok(o) if o.status.success() => match serde_json::from_slice(&o.stdout) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("suite_report: `movies-stack iam-policy` printed no JSON: {e}");
                return ExitCode::from(2);
            }
        },
        Ok(o) => {
            eprintln!("suite_report: `movies-stack iam-policy` failed: {}", String::from_utf8_lossy(&o.stderr).trim());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("suite_report: cannot run {}: {e}", deployer_bin().display());
            return ExitCode::from(2);
        }
    };
    let allowed = iam_coverage::policy_actions(&policy);
    let c = iam_coverage::compare(&s.deployer_operations, &allowed);
    println!();
    println!(
        "IAM policy ({}): {} actions allowed; the movies-stack binary sent {} operations needing {} actions",
        config.display(),
        allowed.len(),
        s.deployer_operations.len(),
        c.needed.len()
    );
    for (action, ops) in &c.needed {
        let mark = if allowed.contains(action) { "ok" } else { "DENIED" };
        println!("  {mark:<6} {action:<44} {}", ops.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    for (action, why) in iam_coverage::NOT_CALLED {
        println!(
            "  {:<6} {action:<44} not a call of its own: {why}",
            if allowed.contains(*action) { "ok" } else { "DENIED" }
        );
    }
    if c.ok() {
        println!("the policy allows every action the tool needed, and nothing else");
        return ExitCode::SUCCESS;
    }
    for a in &c.denied {
        eprintln!(
            "FAIL: the policy does not allow {a}, which {} needed",
            c.needed[a].iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for a in &c.unused {
        eprintln!(
            "FAIL: the policy allows {a}, which no operation of the suite needed (remove it, or list it in iam_coverage::NOT_CALLED with the reason)"
        );
    }
    ExitCode::from(1)
}
