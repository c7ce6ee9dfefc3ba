//! The suite's record of what the strict model saw: one JSON line per proxy, appended on drop
//! to `$MOVIES_STACK_SUITE_DIR/<test binary>.jsonl` when that variable is set; read back by
//! `suite_report`. New fields can be added freely: readers ignore what they do not know.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable naming the folder of the records.
pub const SUITE_DIR_ENV: &str = "MOVIES_STACK_SUITE_DIR";

/// One operation seen by a proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationStats {
    pub service: String,
    pub operation: String,
    pub calls: usize,
    /// Calls validated against the service model (passed or refused).
    pub validated: usize,
    /// Calls the validation refused.
    pub refused: usize,
}

impl OperationStats {
    pub fn unvalidated(&self) -> usize {
        self.calls - self.validated
    }
}

/// A pattern the model could not check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unchecked {
    pub service: String,
    pub shape: String,
    pub pattern: String,
    pub reason: String,
}

/// What one proxy's model saw, for the suite report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The test binary (`up_e2e`).
    pub binary: String,
    /// The test (libtest names each test's thread after it).
    pub test: String,
    pub operations: Vec<OperationStats>,
    /// `(service, operation)` the movies-stack binary sent (the IAM policy's coverage check).
    #[serde(default)]
    pub deployer_operations: Vec<(String, String)>,
    /// What the authorization behaviour evaluated, allowed and denied.
    #[serde(default)]
    pub authorization: super::authz::AuthzRecord,
    /// Hits per behaviour name.
    pub behaviours: BTreeMap<String, usize>,
    /// Behaviours turned off, with the test's reason.
    pub disabled: BTreeMap<String, String>,
    pub not_checkable: Vec<Unchecked>,
}

/// Why the records could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not a strict-model record: {source}")]
    Parse { path: PathBuf, line: usize, source: serde_json::Error },
}

/// The running test binary's name without cargo's hash (`up_e2e-0123abcd` → `up_e2e`).
pub fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(Path::file_stem).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    strip_cargo_hash(&stem).to_string()
}

fn strip_cargo_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => name,
        _ => stem,
    }
}

/// Append a record to `<dir>/<binary>.jsonl` (one write per line, so that tests running in
/// parallel do not interleave).
pub fn append(dir: &Path, record: &Record) -> Result<(), ReportError> {
    let path = dir.join(format!("{}.jsonl", record.binary));
    let io = |source| ReportError::Io { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut line = serde_json::to_string(record).expect("a record serialises");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io)?;
    f.write_all(line.as_bytes()).map_err(io)
}

/// Every record in the `*.jsonl` files of `dir`.
pub fn read_all(dir: &Path) -> Result<Vec<Record>, ReportError> {
    let io = |source| ReportError::Io { path: dir.to_path_buf(), source };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let r = serde_json::from_str(line).map_err(|source| ReportError::Parse {
                path: path.clone(),
                line: i + 1,
                source,
            })?;
            records.push(r);
        }
    }
    Ok(records)
}

/// The suite's totals.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `(service, operation)` → (calls, validated, refused).
    pub operations: BTreeMap<(String, String), (usize, usize, usize)>,
    pub behaviours: BTreeMap<String, usize>,
    /// Behaviour → the tests that turned it off, with their reasons.
    pub disabled: BTreeMap<String, Vec<(String, String)>>,
    pub not_checkable: Vec<Unchecked>,
    /// `(service, operation)` the movies-stack binary sent, across the suite.
    pub deployer_operations: std::collections::BTreeSet<(String, String)>,
    pub records: usize,
}

impl Summary {
    pub fn of(records: &[Record]) -> Summary {
        let mut s = Summary { records: records.len(), ..Summary::default() };
        for r in records {
            for op in &r.operations {
                let e = s.operations.entry((op.service.clone(), op.operation.clone())).or_default();
                e.0 += op.calls;
                e.1 += op.validated;
                e.2 += op.refused;
            }
            for (b, n) in &r.behaviours {
                *s.behaviours.entry(b.clone()).or_default() += n;
            }
            for (b, why) in &r.disabled {
                s.disabled.entry(b.clone()).or_default().push((format!("{}::{}", r.binary, r.test), why.clone()));
            }
            s.not_checkable.extend(r.not_checkable.iter().cloned());
            s.deployer_operations.extend(r.deployer_operations.iter().cloned());
        }
        s.not_checkable.sort();
        s.not_checkable.dedup();
        s
    }

    /// Operations with calls that were not validated.
    pub fn unvalidated(&self) -> Vec<String> {
        self.operations
            .iter()
            .filter(|(_, (calls, validated, _))| calls > validated)
            .map(|((svc, op), (calls, validated, _))| {
                format!("{svc} {op}: {} of {calls} calls unvalidated", calls - validated)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(test: &str, validated: usize) -> Record {
        Record {
            binary: "up_e2e".into(),
            test: test.into(),
            operations: vec![OperationStats {
                service: "lambda".into(),
                operation: "GetPolicy".into(),
                calls: 2,
                validated,
                refused: 1,
            }],
            deployer_operations: vec![("lambda".into(), "GetPolicy".into())],
            authorization: Default::default(),
            behaviours: BTreeMap::from([("validation".into(), 1)]),
            disabled: BTreeMap::from([("apigateway-quotas".into(), "why".into())]),
            not_checkable: Vec::new(),
        }
    }

    #[test]
    fn records_round_trip_and_sum_up() {
        let dir = crate::TempDir::new("suite");
        append(dir.path(), &record("a", 2)).unwrap();
        append(dir.path(), &record("b", 1)).unwrap();
        let back = read_all(dir.path()).unwrap();
        assert_eq!(back, vec![record("a", 2), record("b", 1)]);
        let s = Summary::of(&back);
        assert_eq!(s.operations[&("lambda".to_string(), "GetPolicy".to_string())], (4, 3, 2));
        assert_eq!(s.behaviours["validation"], 2);
        assert_eq!(s.unvalidated(), vec!["lambda GetPolicy: 1 of 4 calls unvalidated".to_string()]);
        assert_eq!(s.disabled["apigateway-quotas"].len(), 2);
    }

    #[test]
    fn binary_names_lose_cargo_hashes() {
        assert_eq!(strip_cargo_hash("up_e2e-0123456789abcdef"), "up_e2e");
        assert_eq!(strip_cargo_hash("e2e-0123456789abcdef"), "e2e");
        assert_eq!(strip_cargo_hash("suite_report"), "suite_report");
        assert_eq!(strip_cargo_hash("down-eni"), "down-eni");
    }
}
