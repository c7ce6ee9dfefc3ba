//! `traces --map`: X-Ray's service graph (GetServiceGraph) as nodes with their request count,
//! error and fault rates, and edges with their request count and the p50 / p99 of their response
//! time histogram. Pure: built from the typed graph, rendered as text.

use serde::Serialize;

use crate::resources::xray::{GraphService, Stats};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceMap {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub name: String,
    /// X-Ray's type: `AWS::ApiGateway::Stage`, `AWS::Lambda::Function`, `client`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub requests: u64,
    pub errors: u64,
    pub throttles: u64,
    pub faults: u64,
    /// Fractions of `requests` (0 when there were none).
    pub error_rate: f64,
    pub fault_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub requests: u64,
    pub errors: u64,
    pub faults: u64,
    /// Milliseconds, from the edge's response time histogram; `None` without one.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

fn rate(part: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { part as f64 / total as f64 }
}

/// The value at quantile `q` (0-1) of a histogram of (value, count): the smallest value whose
/// cumulative count reaches `q` of the total (nearest rank).
pub fn quantile(histogram: &[(f64, u64)], q: f64) -> Option<f64> {
    let mut entries: Vec<(f64, u64)> = histogram.iter().copied().filter(|(_, n)| *n > 0).collect();
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = entries.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    entries.into_iter().find_map(|(v, n)| {
        seen += n;
        (seen >= rank).then_some(v)
    })
}

impl ServiceMap {
    pub fn of(services: &[GraphService]) -> ServiceMap {
        let name_of = |id: i32| {
            services.iter().find(|s| s.reference_id == id).map(|s| s.name.clone()).unwrap_or_else(|| format!("#{id}"))
        };
        let node = |s: &GraphService| {
            let Stats { total, errors, throttles, faults, .. } = s.stats;
            Node {
                name: s.name.clone(),
                kind: s.kind.clone(),
                requests: total,
                errors,
                throttles,
                faults,
                error_rate: rate(errors, total),
                fault_rate: rate(faults, total),
            }
        };
        let mut edges = Vec::new();
        for s in services {
            for e in &s.edges {
                edges.push(Edge {
                    from: s.name.clone(),
                    to: name_of(e.reference_id),
                    requests: e.stats.total,
                    errors: e.stats.errors,
                    faults: e.stats.faults,
                    p50_ms: quantile(&e.response_times, 0.50).map(|v| v * 1000.0),
                    p99_ms: quantile(&e.response_times, 0.99).map(|v| v * 1000.0),
                });
            }
        }
        ServiceMap { nodes: services.iter().map(node).collect(), edges }
    }

    /// The map as text lines: a table of nodes, then a table of edges.
    pub fn lines(&self) -> Vec<String> {
        let pct = |r: f64| format!("{:.1}%", r * 100.0);
        let opt_ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        let mut out = vec![format!("{:<36} {:<24} {:>8} {:>7} {:>7}", "node", "type", "requests", "errors", "faults")];
        for n in &self.nodes {
            out.push(format!(
                "{:<36} {:<24} {:>8} {:>7} {:>7}",
                n.name,
                n.kind,
                n.requests,
                pct(n.error_rate),
                pct(n.fault_rate)
            ));
        }
        out.push(String::new());
        out.push(format!("{:<58} {:>8} {:>7} {:>9}", "edge", "requests", "p50 ms", "p99 ms"));
        for e in &self.edges {
            out.push(format!(
                "{:<58} {:>8} {:>7} {:>9}",
                format!("{} -> {}", e.from, e.to),
                e.requests,
                opt_ms(e.p50_ms),
                opt_ms(e.p99_ms)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::xray::GraphEdge;

    #[test]
    fn quantiles_are_nearest_rank_over_the_histogram() {
        let h = [(0.2, 1), (0.05, 97), (1.5, 2)];
        assert_eq!(quantile(&h, 0.50), Some(0.05));
        assert_eq!(quantile(&h, 0.98), Some(0.2));
        assert_eq!(quantile(&h, 0.99), Some(1.5));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[(0.1, 0)], 0.5), None);
    }

    #[test]
    fn nodes_have_rates_and_edges_are_named_with_their_percentiles() {
        let stats = |total, errors, faults| Stats { total, ok: total - errors - faults, errors, throttles: 0, faults };
        let services = vec![
            GraphService {
                reference_id: 0,
                name: "abc123/prod".into(),
                kind: "AWS::ApiGateway::Stage".into(),
                stats: stats(4, 0, 1),
                edges: vec![GraphEdge {
                    reference_id: 1,
                    stats: stats(3, 0, 1),
                    response_times: vec![(0.12, 2), (2.0, 1)],
                }],
            },
            GraphService {
                reference_id: 1,
                name: "apigw_handler".into(),
                kind: "AWS::Lambda::Function".into(),
                stats: stats(3, 0, 1),
                edges: vec![],
            },
        ];
        let m = ServiceMap::of(&services);
        assert_eq!(m.nodes[0].fault_rate, 0.25);
        assert_eq!(m.edges.len(), 1);
        let e = &m.edges[0];
        assert_eq!((e.from.as_str(), e.to.as_str(), e.requests), ("abc123/prod", "apigw_handler", 3));
        assert_eq!((e.p50_ms, e.p99_ms), (Some(120.0), Some(2000.0)));
        let text = m.lines().join("\n");
        assert!(
            text.contains("abc123/prod                          AWS::ApiGateway::Stage          4    0.0%   25.0%"),
            "{text}"
        );
        assert!(text.contains("abc123/prod -> apigw_handler"), "{text}");
        assert!(text.lines().any(|l| l.ends_with("       3   120.0    2000.0")), "{text}");
    }
}
