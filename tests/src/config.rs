//! Config files for unique test stacks, and temp folders.

use std::path::{Path, PathBuf};

use crate::unique_suffix;

/// The names a test stack must not share with any other: stack, table and function.
#[derive(Debug, Clone)]
pub struct StackNames {
    pub stack: String,
    pub table: String,
    pub function: String,
}

impl StackNames {
    /// `prefix` must match `[a-z][a-z0-9-]*` and be at most 16 characters.
    pub fn unique(prefix: &str) -> StackNames {
        assert!(
            prefix.len() <= 16
                && prefix.starts_with(|c: char| c.is_ascii_lowercase())
                && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "bad stack prefix {prefix:?}"
        );
        let stack = format!("e2e-{prefix}-{}", unique_suffix());
        StackNames { table: format!("{stack}-table"), function: format!("{stack}-fn"), stack }
    }
}

/// Value for [`write_config`] overrides that deletes the key instead of setting it.
pub const REMOVE: &str = "<remove>";

/// The full config for `names`, every value spelled out (the contract's defaults). No endpoint:
/// the tests pass `--endpoint-url`.
pub fn base_config(names: &StackNames) -> toml::Table {
    let text = format!(
        r#"
stack = "{stack}"

[aws]
region = "us-east-1"
dummy_credentials = true

[network]
vpc_cidr = "10.1.0.0/16"
az_count = 2
subnet_prefix = 24

[table]
name = "{table}"

[function]
name = "{function}"
architecture = "arm64"
memory_mb = 256
timeout_seconds = 10

[api]
stage = "prod"

[logs]
retention_days = 365

[usage_plans.standard]
name = "Standard"
rate_limit = 50.0
burst_limit = 100
quota_limit = 10000
quota_period = "DAY"

[usage_plans.premium]
name = "Premium"
rate_limit = 100.0
burst_limit = 200
quota_limit = 50000
quota_period = "DAY"
"#,
        stack = names.stack,
        table = names.table,
        function = names.function,
    );
    text.parse().expect("base config parses")
}

/// Apply `overrides` (dotted key, raw TOML value or [`REMOVE`]) to the base config and write it to
/// `path`. Missing tables on the way are created, so unknown keys can be injected too.
pub fn write_config_file(path: &Path, names: &StackNames, overrides: &[(&str, &str)]) -> PathBuf {
    let mut table = base_config(names);
    for (key, raw) in overrides {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, parents) = parts.split_last().expect("non-empty key");
        let mut cur = &mut table;
        for p in parents {
            let entry = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = entry.as_table_mut().unwrap_or_else(|| panic!("override {key}: {p} is not a table"));
        }
        if *raw == REMOVE {
            cur.remove(*last);
        } else {
            let doc: toml::Table = format!("v = {raw}")
                .parse()
                .unwrap_or_else(|e| panic!("override {key} = {raw}: not a TOML value: {e}"));
            cur.insert(last.to_string(), doc["v"].clone());
        }
    }
    let text = toml::to_string(&table).expect("serialize config");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

/// [`write_config_file`] to `<dir>/<stack>.toml`.
pub fn write_config(dir: &Path, names: &StackNames, overrides: &[(&str, &str)]) -> PathBuf {
    write_config_file(&dir.join(format!("{}.toml", names.stack)), names, overrides)
}

/// A fresh folder under the system temp dir, removed on drop unless the test is failing.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mse2e-{tag}-{}", unique_suffix()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let a = StackNames::unique("up");
        let b = StackNames::unique("up");
        assert_ne!(a.stack, b.stack);
        assert!(a.stack.len() <= 32, "{}", a.stack);
        assert!(a.stack.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }

    #[test]
    fn overrides_set_remove_and_add() {
        let dir = TempDir::new("cfg");
        let names = StackNames::unique("cfg");
        let path = write_config(
            dir.path(),
            &names,
            &[("network.vpc_cidr", "\"10.9.0.0/16\""), ("logs.retention_days", REMOVE), ("extra.key", "1")],
        );
        let t: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        assert_eq!(t["network"]["vpc_cidr"].as_str(), Some("10.9.0.0/16"));
        assert!(t["logs"].as_table().unwrap().get("retention_days").is_none());
        assert_eq!(t["extra"]["key"].as_integer(), Some(1));
        assert_eq!(t["stack"].as_str(), Some(names.stack.as_str()));
        assert_eq!(t["usage_plans"]["premium"]["rate_limit"].as_float(), Some(100.0));
    }
}
