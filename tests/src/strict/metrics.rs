//! CloudWatch metrics as AWS serves them ([`super::Behaviour::CloudWatchMetrics`]): moto 5.2.5's
//! GetMetricData returns nothing for percentile statistics (`p50`, `p99`) and checks none of the
//! call's limits, so the model keeps the data points that PutMetricData calls put through the
//! proxy and answers GetMetricData itself, as the CloudWatch API reference describes it:
//!
//! - Statistics per period: `SampleCount`, `Sum`, `Average`, `Minimum`, `Maximum` and percentiles
//!   `pNN` / `pNN.NN`, over the values whose timestamps fall in `[period start, + Period)`, the
//!   periods aligned on multiples of `Period`; a period without data has no data point (no
//!   zero). A percentile is the nearest-rank value of the raw values (`Value`, `Values` with
//!   `Counts`); a period holding a statistic set (`StatisticValues`) has none, unless the set is
//!   one value repeated (PutMetricData API reference: "CloudWatch needs raw data points to
//!   calculate percentile statistics"). CloudWatch's own percentiles are approximations; the
//!   nearest rank is exact on the values the tests put.
//! - `StartTime` (within 15 days) is rounded down to the minute; `EndTime` is exclusive;
//!   `ScanBy` orders each result's points (default `TimestampDescending`); `Unit`, when given,
//!   keeps the values put with that unit only; `Label` defaults to the metric's name.
//! - Limits, with AWS's errors (400 `ValidationError`, the messages AWS writes): at most 500
//!   `MetricDataQueries`; each `Id` must match `^[a-z][a-zA-Z0-9_]*$`; a `Stat` must be a
//!   statistic; a `Period` a multiple of 60 (or 1, 5, 10, 20, 30 for high resolution);
//!   `StartTime` before `EndTime`. At most `MaxDatapoints` (default 100,800) data points per
//!   answer, the rest behind a `NextToken`.
//! - Metric math (`Expression`) and Metrics Insights queries are not modeled: answered 500, so
//!   that no such call passes unjudged.
//!
//! The tests put data into the `AWS/` namespaces as the services do (PutMetricData refuses
//! those namespaces to everyone else; the model does not: the tests stand in for the services).
//! Data put straight into moto (not through this proxy) is not seen.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Exchange;
use crate::proxy::{Fault, Reply};

/// The most queries one GetMetricData takes, and the data points one answer holds by default.
pub const MAX_QUERIES: usize = 500;
pub const MAX_DATAPOINTS: usize = 100_800;
const ID_PATTERN: &str = "^[a-z][a-zA-Z0-9_]*$";

/// A metric: namespace, name and its dimensions (sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricKey {
    namespace: String,
    name: String,
    dimensions: Vec<(String, String)>,
}

/// What one PutMetricData datum left at one time.
#[derive(Debug, Clone, PartialEq)]
enum Sample {
    /// A value seen `count` times.
    Raw { t: f64, v: f64, count: f64, unit: Option<String> },
    /// A statistic set.
    Set { t: f64, count: f64, sum: f64, min: f64, max: f64, unit: Option<String> },
}

impl Sample {
    fn t(&self) -> f64 {
        match self {
            Sample::Raw { t, .. } | Sample::Set { t, .. } => *t,
        }
    }

    fn unit(&self) -> Option<&str> {
        match self {
            Sample::Raw { unit, .. } | Sample::Set { unit, .. } => unit.as_deref(),
        }
    }

    /// As raw values, when it is (a set of one repeated value is).
    fn raw(&self) -> Option<(f64, f64)> {
        match *self {
            Sample::Raw { v, count, .. } => Some((v, count)),
            Sample::Set { count, sum, min, max, .. } if min == max && (sum - min * count).abs() < 1e-9 => {
                Some((min, count))
            }
            Sample::Set { .. } => None,
        }
    }
}

/// One query's (id, label, points): (period start, value).
type QueryPoints = (String, String, Vec<(f64, f64)>);

/// The data points put through the proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    data: BTreeMap<MetricKey, Vec<Sample>>,
}

fn validation(message: String) -> Fault {
    Fault { status: 400, code: "ValidationError".into(), message }
}

fn dimensions(v: Option<&Value>) -> Vec<(String, String)> {
    let mut d: Vec<(String, String)> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| {
            (d["Name"].as_str().unwrap_or_default().to_string(), d["Value"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    d.sort();
    d
}

/// `^[a-z][a-zA-Z0-9_]*$`.
fn valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A statistic the model computes: the basic five or a percentile (`p0`..`p100`, decimals
/// allowed).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stat {
    SampleCount,
    Sum,
    Average,
    Minimum,
    Maximum,
    Percentile(f64),
}

/// The statistic, or why not: `Err(true)` a statistic CloudWatch knows that the model does not
/// compute (trimmed means and the like), `Err(false)` not a statistic.
fn stat(text: &str) -> Result<Stat, bool> {
    Ok(match text {
        "SampleCount" => Stat::SampleCount,
        "Sum" => Stat::Sum,
        "Average" => Stat::Average,
        "Minimum" => Stat::Minimum,
        "Maximum" => Stat::Maximum,
        p if p.starts_with('p') => {
            let n = &p[1..];
            let ok = !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                && n.split('.').next().is_some_and(|whole| !whole.is_empty() && whole.len() <= 3);
            match n.parse::<f64>() {
                Ok(x) if ok && (0.0..=100.0).contains(&x) => Stat::Percentile(x),
                _ => return Err(false),
            }
        }
        other => {
            let lower = other.to_ascii_lowercase();
            let known = ["tm", "wm", "tc", "ts", "pr", "iqm"].iter().any(|k| lower.starts_with(k));
            return Err(known);
        }
    })
}

/// The statistic of one period's samples (`None`: no data point).
fn compute(stat: Stat, samples: &[&Sample]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let (mut count, mut sum, mut min, mut max) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
    for s in samples {
        match **s {
            Sample::Raw { v, count: c, .. } => {
                count += c;
                sum += v * c;
                min = min.min(v);
                max = max.max(v);
            }
            Sample::Set { count: c, sum: s, min: lo, max: hi, .. } => {
                count += c;
                sum += s;
                min = min.min(lo);
                max = max.max(hi);
            }
        }
    }
    match stat {
        Stat::SampleCount => Some(count),
        Stat::Sum => Some(sum),
        Stat::Average => (count > 0.0).then(|| sum / count),
        Stat::Minimum => Some(min),
        Stat::Maximum => Some(max),
        Stat::Percentile(p) => {
            let mut raw: Vec<(f64, f64)> = samples.iter().map(|s| s.raw()).collect::<Option<_>>()?;
            raw.sort_by(|a, b| a.0.total_cmp(&b.0));
            let n: f64 = raw.iter().map(|(_, c)| c).sum();
            // Nearest rank: the smallest value with at least p% of the values at or below it.
            let rank = ((p / 100.0) * n).ceil().max(1.0);
            let mut seen = 0.0;
            raw.iter()
                .find(|(_, c)| {
                    seen += c;
                    seen >= rank
                })
                .map(|(v, _)| *v)
        }
    }
}

impl Metrics {
    /// A PutMetricData that succeeded: keep its values (`now`: the time a datum without a
    /// timestamp is put at, seconds since the epoch).
    pub fn record(&mut self, ex: &Exchange, now: f64) {
        if !(ex.service == "monitoring" && ex.operation == "PutMetricData") {
            return;
        }
        let namespace = ex.str_at(&["Namespace"]).unwrap_or_default().to_string();
        for d in ex.input.get("MetricData").and_then(Value::as_array).into_iter().flatten() {
            let key = MetricKey {
                namespace: namespace.clone(),
                name: d["MetricName"].as_str().unwrap_or_default().to_string(),
                dimensions: dimensions(d.get("Dimensions")),
            };
            let t = d.get("Timestamp").and_then(Value::as_f64).unwrap_or(now);
            let unit = d.get("Unit").and_then(Value::as_str).map(str::to_string);
            let samples = self.data.entry(key).or_default();
            if let Some(v) = d.get("Value").and_then(Value::as_f64) {
                samples.push(Sample::Raw { t, v, count: 1.0, unit: unit.clone() });
            }
            if let Some(values) = d.get("Values").and_then(Value::as_array) {
                let counts = d.get("Counts").and_then(Value::as_array);
                for (i, v) in values.iter().enumerate() {
                    let count = counts.and_then(|c| c.get(i)).and_then(Value::as_f64).unwrap_or(1.0);
                    if let Some(v) = v.as_f64() {
                        samples.push(Sample::Raw { t, v, count, unit: unit.clone() });
                    }
                }
            }
            if let Some(set) = d.get("StatisticValues") {
                let f = |k: &str| set.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                samples.push(Sample::Set {
                    t,
                    count: f("SampleCount"),
                    sum: f("Sum"),
                    min: f("Minimum"),
                    max: f("Maximum"),
                    unit,
                });
            }
        }
    }

    /// AWS's answer to GetMetricData, or its error.
    pub fn get_metric_data(&self, ex: &Exchange) -> Result<Reply, Fault> {
        let queries = ex.input.get("MetricDataQueries").and_then(Value::as_array).cloned().unwrap_or_default();
        if queries.len() > MAX_QUERIES {
            return Err(validation(format!(
                "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
            )));
        }
        let mut wrong = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let id = q["Id"].as_str().unwrap_or_default();
            if !valid_id(id) {
                wrong.push(format!(
                    "The value {id} for parameter MetricDataQueries.member.{}.Id is not matching the expected pattern {ID_PATTERN}.",
                    i + 1
                ));
            }
            if let Some(ms) = q.get("MetricStat") {
                let s = ms["Stat"].as_str().unwrap_or_default();
                if stat(s) == Err(false) {
                    wrong.push(format!(
                        "The value {s} for parameter MetricDataQueries.member.{}.MetricStat.Stat is not a valid statistic.",
                        i + 1
                    ));
                }
                let period = ms["Period"].as_i64().unwrap_or(0);
                if !(period > 0 && (period % 60 == 0 || [1, 5, 10, 20, 30].contains(&period))) {
                    wrong.push(format!(
                        "The parameter MetricDataQueries.member.{}.MetricStat.Period must be a multiple of 60 or one of 1, 5, 10, 20, 30.",
                        i + 1
                    ));
                }
            }
        }
        if !wrong.is_empty() {
            return Err(validation(wrong.join("\n")));
        }
        let (start, end) = (ex.input["StartTime"].as_f64().unwrap_or(0.0), ex.input["EndTime"].as_f64().unwrap_or(0.0));
        if start >= end {
            return Err(validation("The parameter StartTime must be less than the parameter EndTime.".into()));
        }
        let start = (start / 60.0).floor() * 60.0;
        let ascending = ex.input["ScanBy"].as_str() == Some("TimestampAscending");
        let max_points =
            ex.input["MaxDatapoints"].as_u64().map(|n| n as usize).filter(|n| *n > 0).unwrap_or(MAX_DATAPOINTS);
        let offset = match ex.input.get("NextToken").and_then(Value::as_str) {
            None => 0,
            Some(token) => token
                .strip_prefix("strict-model-offset-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Fault {
                    status: 400,
                    code: "InvalidNextToken".into(),
                    message: "The service couldn't process the token.".into(),
                })?,
        };
        // Every query's points, in query order; the page is `max_points` of them from `offset`.
        let mut all: Vec<QueryPoints> = Vec::new();
        for q in &queries {
            if q.get("ReturnData").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let Some(ms) = q.get("MetricStat") else {
                return Err(Fault {
                    status: 500,
                    code: "StrictModel".into(),
                    message:
                        "strict model: GetMetricData with an Expression (metric math, Metrics Insights) is not modeled"
                            .into(),
                });
            };
            let s = match stat(ms["Stat"].as_str().unwrap_or_default()) {
                Ok(s) => s,
                Err(_) => {
                    return Err(Fault {
                        status: 500,
                        code: "StrictModel".into(),
                        message: format!("strict model: statistic {} is not modeled", ms["Stat"]),
                    });
                }
            };
            let metric = &ms["Metric"];
            let key = MetricKey {
                namespace: metric["Namespace"].as_str().unwrap_or_default().to_string(),
                name: metric["MetricName"].as_str().unwrap_or_default().to_string(),
                dimensions: dimensions(metric.get("Dimensions")),
            };
            let period = ms["Period"].as_f64().unwrap_or(60.0);
            let unit = ms.get("Unit").and_then(Value::as_str);
            let mut by_period: BTreeMap<i64, Vec<&Sample>> = BTreeMap::new();
            for sample in self.data.get(&key).into_iter().flatten() {
                let t = sample.t();
                if t < start || t >= end || unit.is_some_and(|u| sample.unit() != Some(u)) {
                    continue;
                }
                by_period.entry(((t / period).floor() * period) as i64).or_default().push(sample);
            }
            let mut points: Vec<(f64, f64)> =
                by_period.iter().filter_map(|(p, samples)| Some((*p as f64, compute(s, samples)?))).collect();
            if !ascending {
                points.reverse();
            }
            let label = q["Label"].as_str().unwrap_or_else(|| metric["MetricName"].as_str().unwrap_or_default());
            all.push((q["Id"].as_str().unwrap_or_default().to_string(), label.to_string(), points));
        }
        let total: usize = all.iter().map(|(_, _, p)| p.len()).sum();
        let mut skip = offset;
        let mut room = max_points;
        let results: Vec<Value> = all
            .into_iter()
            .map(|(id, label, points)| {
                let from = skip.min(points.len());
                skip -= from;
                let page: Vec<(f64, f64)> = points[from..].iter().take(room).copied().collect();
                room -= page.len();
                let complete = from + page.len() == points.len();
                json!({
                    "Id": id,
                    "Label": label,
                    "Timestamps": page.iter().map(|(t, _)| t).collect::<Vec<_>>(),
                    "Values": page.iter().map(|(_, v)| v).collect::<Vec<_>>(),
                    "StatusCode": if complete { "Complete" } else { "PartialData" },
                    "Messages": [],
                })
            })
            .collect();
        let served = offset + max_points;
        let mut body = json!({ "MetricDataResults": results, "Messages": [] });
        if served < total {
            body["NextToken"] = json!(format!("strict-model-offset-{served}"));
        }
        Ok(Reply { status: 200, content_type: "application/x-amz-json-1.0".into(), body: body.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "monitoring".into(), operation: operation.into(), input }
    }

    const API: &str = r#"[{"Name": "Stage", "Value": "prod"}, {"Name": "ApiName", "Value": "s"}]"#;

    fn put(m: &mut Metrics, name: &str, t: f64, values: &[f64]) {
        let dims: Value = serde_json::from_str(API).unwrap();
        m.record(
            &ex(
                "PutMetricData",
                json!({"Namespace": "AWS/ApiGateway", "MetricData": [
                    {"MetricName": name, "Dimensions": dims, "Timestamp": t, "Values": values}
                ]}),
            ),
            0.0,
        );
    }

    fn query(id: &str, name: &str, stat: &str) -> Value {
        // The dimensions in the other order: a metric is its set of dimensions.
        json!({"Id": id, "MetricStat": {"Metric": {"Namespace": "AWS/ApiGateway", "MetricName": name,
            "Dimensions": [{"Name": "ApiName", "Value": "s"}, {"Name": "Stage", "Value": "prod"}]},
            "Period": 60, "Stat": stat}})
    }

    fn answer(m: &Metrics, input: Value) -> Value {
        let reply = m.get_metric_data(&ex("GetMetricData", input)).expect("answered");
        serde_json::from_str(&reply.body).unwrap()
    }

    #[test]
    fn statistics_and_percentiles_per_period() {
        let mut m = Metrics::default();
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        put(&mut m, "Latency", 6_010.0, &values);
        put(&mut m, "Latency", 6_130.0, &[7.0]);
        put(&mut m, "Count", 6_010.0, &[1.0, 1.0, 1.0]);
        let stats = ["SampleCount", "Sum", "Average", "Minimum", "Maximum", "p50", "p99", "p99.9"];
        let mut queries: Vec<Value> =
            stats.iter().enumerate().map(|(i, s)| query(&format!("q{i}"), "Latency", s)).collect();
        queries.push(query("requests", "Count", "SampleCount"));
        let a = answer(
            &m,
            json!({"MetricDataQueries": queries, "StartTime": 6_000.5, "EndTime": 6_180.0,
            "ScanBy": "TimestampAscending"}),
        );
        let r = a["MetricDataResults"].as_array().unwrap();
        let first: Vec<f64> = r.iter().take(8).map(|x| x["Values"][0].as_f64().unwrap()).collect();
        assert_eq!(first, [100.0, 5050.0, 50.5, 1.0, 100.0, 50.0, 99.0, 100.0]);
        assert_eq!(
            r[0]["Timestamps"],
            json!([6_000.0, 6_120.0]),
            "StartTime rounded down to the minute; no empty period"
        );
        assert_eq!(r[5]["Values"], json!([50.0, 7.0]));
        assert_eq!((r[8]["Id"].as_str(), r[8]["Values"][0].as_f64()), (Some("requests"), Some(3.0)));
        assert_eq!((r[0]["Label"].as_str(), r[0]["StatusCode"].as_str()), (Some("Latency"), Some("Complete")));
        // Newest first by default; EndTime is exclusive.
        let d = answer(
            &m,
            json!({"MetricDataQueries": [query("a", "Latency", "Maximum")], "StartTime": 6_000, "EndTime": 6_120}),
        );
        assert_eq!(d["MetricDataResults"][0]["Timestamps"], json!([6_000.0]));
        let d = answer(
            &m,
            json!({"MetricDataQueries": [query("a", "Latency", "Maximum")], "StartTime": 6_000, "EndTime": 6_200}),
        );
        assert_eq!(d["MetricDataResults"][0]["Timestamps"], json!([6_120.0, 6_000.0]));
        // Another dimension set is another metric.
        let mut other = query("a", "Latency", "Sum");
        other["MetricStat"]["Metric"]["Dimensions"] = json!([{"Name": "ApiName", "Value": "s"}]);
        let none = answer(&m, json!({"MetricDataQueries": [other], "StartTime": 0, "EndTime": 10_000}));
        assert_eq!(none["MetricDataResults"][0]["Values"], json!([]));
    }

    #[test]
    fn a_statistic_set_has_no_percentile_unless_it_is_one_value() {
        let mut m = Metrics::default();
        let dims: Value = serde_json::from_str(API).unwrap();
        m.record(
            &ex(
                "PutMetricData",
                json!({"Namespace": "AWS/ApiGateway", "MetricData": [
                    {"MetricName": "Latency", "Dimensions": dims.clone(), "Timestamp": 60,
                     "StatisticValues": {"SampleCount": 2, "Sum": 30, "Minimum": 10, "Maximum": 20}},
                    {"MetricName": "Latency", "Dimensions": dims, "Timestamp": 120,
                     "StatisticValues": {"SampleCount": 3, "Sum": 30, "Minimum": 10, "Maximum": 10}}
                ]}),
            ),
            0.0,
        );
        let a = answer(
            &m,
            json!({"MetricDataQueries": [query("p", "Latency", "p50"), query("s", "Latency", "Average")],
            "StartTime": 0, "EndTime": 600, "ScanBy": "TimestampAscending"}),
        );
        assert_eq!(a["MetricDataResults"][0]["Timestamps"], json!([120.0]));
        assert_eq!(a["MetricDataResults"][1]["Values"], json!([15.0, 10.0]));
    }

    #[test]
    fn the_limits_answer_as_aws_does() {
        let m = Metrics::default();
        let refused = |input: Value| m.get_metric_data(&ex("GetMetricData", input)).unwrap_err();
        let many: Vec<Value> = (0..501).map(|i| query(&format!("q{i}"), "Count", "Sum")).collect();
        let f = refused(json!({"MetricDataQueries": many, "StartTime": 0, "EndTime": 60}));
        assert_eq!((f.status, f.code.as_str()), (400, "ValidationError"));
        assert!(f.message.contains("must not have a size greater than 500"), "{}", f.message);
        let f = refused(json!({"MetricDataQueries": [query("5xx", "5XXError", "Sum"), query("Api", "Count", "Sum")],
            "StartTime": 0, "EndTime": 60}));
        assert_eq!(
            f.message,
            "The value 5xx for parameter MetricDataQueries.member.1.Id is not matching the expected pattern ^[a-z][a-zA-Z0-9_]*$.\n\
             The value Api for parameter MetricDataQueries.member.2.Id is not matching the expected pattern ^[a-z][a-zA-Z0-9_]*$."
        );
        let f = refused(json!({"MetricDataQueries": [query("a", "Count", "Median")], "StartTime": 0, "EndTime": 60}));
        assert!(
            f.message.contains("MetricDataQueries.member.1.MetricStat.Stat is not a valid statistic"),
            "{}",
            f.message
        );
        let mut q = query("a", "Count", "Sum");
        q["MetricStat"]["Period"] = json!(90);
        assert!(
            refused(json!({"MetricDataQueries": [q], "StartTime": 0, "EndTime": 60}))
                .message
                .contains("multiple of 60")
        );
        assert!(
            refused(json!({"MetricDataQueries": [query("a", "Count", "Sum")], "StartTime": 60, "EndTime": 60}))
                .message
                .contains("StartTime must be less than")
        );
        let f = refused(
            json!({"MetricDataQueries": [{"Id": "e", "Expression": "SUM(METRICS())"}], "StartTime": 0, "EndTime": 60}),
        );
        assert_eq!(f.status, 500, "metric math is not modeled");
    }

    #[test]
    fn more_points_than_max_datapoints_come_in_pages() {
        let mut m = Metrics::default();
        for minute in 0..5 {
            put(&mut m, "Count", f64::from(minute) * 60.0, &[1.0]);
        }
        let input = |token: Option<&str>| {
            let mut i = json!({"MetricDataQueries": [query("a", "Count", "Sum"), query("b", "Count", "Sum")],
                "StartTime": 0, "EndTime": 600, "MaxDatapoints": 4, "ScanBy": "TimestampAscending"});
            if let Some(t) = token {
                i["NextToken"] = json!(t);
            }
            i
        };
        let first = answer(&m, input(None));
        assert_eq!(first["MetricDataResults"][0]["Timestamps"].as_array().unwrap().len(), 4);
        assert_eq!(first["MetricDataResults"][0]["StatusCode"], "PartialData");
        let token = first["NextToken"].as_str().unwrap().to_string();
        let second = answer(&m, input(Some(&token)));
        assert_eq!(second["MetricDataResults"][0]["Timestamps"], json!([240.0]));
        assert_eq!(second["MetricDataResults"][1]["Timestamps"], json!([0.0, 60.0, 120.0]));
        let third = answer(&m, input(second["NextToken"].as_str()));
        assert_eq!(third["MetricDataResults"][1]["Timestamps"], json!([180.0, 240.0]));
        assert!(third.get("NextToken").is_none());
        assert_eq!(m.get_metric_data(&ex("GetMetricData", input(Some("x")))).unwrap_err().code, "InvalidNextToken");
    }
}
