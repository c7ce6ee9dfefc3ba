//! The strict model's suite report: reads the records every proxy appended to
//! `$MOVIES_STACK_SUITE_DIR` (or the folder given as the first argument) and prints the
//! operations the suite exercised, how often each behaviour of the model acted, which tests
//! turned a behaviour off and why, and the patterns the model could not check.
//!
//! Exits 1 when an operation went unvalidated or no record was found; 2 when the records cannot
//! be read.

use std::path::PathBuf;
use std::process::ExitCode;

use e2e::Behaviour;
use e2e::strict::report::{SUITE_DIR_ENV, Summary, read_all};

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
    println!("{:<20} {:>7}", "behaviour", "hits");
    for b in Behaviour::ALL {
        println!("{:<20} {:>7}", b.name(), s.behaviours.get(b.name()).copied().unwrap_or(0));
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
    ExitCode::SUCCESS
}
