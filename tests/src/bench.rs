//! Helpers shared by the benchmark binaries (`src/bin/bench_*.rs`): sample statistics, number
//! formats, Markdown table rows, the fixture event.

use std::time::Duration;

use serde_json::{Value, json};

use crate::repo_root;

/// Sorted samples with percentiles.
pub struct Stats(Vec<Duration>);

impl Stats {
    pub fn new(mut v: Vec<Duration>) -> Stats {
        assert!(!v.is_empty(), "no samples");
        v.sort();
        Stats(v)
    }
    pub fn pct(&self, p: usize) -> Duration {
        let i = (self.0.len() * p / 100).min(self.0.len() - 1);
        self.0[i]
    }
    pub fn median(&self) -> Duration {
        self.pct(50)
    }
    pub fn min(&self) -> Duration {
        self.0[0]
    }
    pub fn max(&self) -> Duration {
        self.0[self.0.len() - 1]
    }
}

/// Milliseconds, 2 decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Microseconds, no decimals.
pub fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

/// One Markdown table row.
pub fn row(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// The handler's fixture event (`POST /` through API Gateway) with this method and body.
pub fn fixture_event(method: &str, body: &str) -> String {
    let path = repo_root().join("handler/tests/fixtures/rest-root-post.json");
    let mut ev: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON");
    ev["httpMethod"] = json!(method);
    ev["requestContext"]["httpMethod"] = json!(method);
    ev["body"] = json!(body);
    ev.to_string()
}
