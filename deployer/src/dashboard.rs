//! What `movies-stack top` shows: one [`Snapshot`] of the stack, plain data. The command builds
//! it (from CloudWatch, or from `serve`'s counters with `--local`), the ui layer draws it
//! (`ui::top`: a ratatui frame, or text), and `--output json` prints it as it is.

use serde::{Serialize, Serializer};

/// One series of the dashboard: a CloudWatch metric and statistic (`resources::metrics` says
/// which), or the counter of `serve` that stands for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesId {
    ApiRequests,
    Api4xx,
    Api5xx,
    ApiLatencyP50,
    ApiLatencyP99,
    FunctionInvocations,
    FunctionErrors,
    FunctionThrottles,
    FunctionDurationP50,
    FunctionDurationP99,
    FunctionConcurrency,
    TableReadCapacity,
    TableWriteCapacity,
    TableReadThrottles,
    TableWriteThrottles,
}

/// Which box of the dashboard a series belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Api,
    Function,
    Table,
}

/// What a series' values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Count,
    Milliseconds,
    /// DynamoDB read or write capacity units.
    CapacityUnits,
}

/// How one period's values are aggregated: what `latest`, `max` and `total` mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Events per period (Sum, SampleCount): the window's total is meaningful.
    Sum,
    /// The highest value in the period (concurrency).
    Maximum,
    /// A percentile of the period's values (latency, duration).
    Percentile,
}

impl SeriesId {
    pub const ALL: [SeriesId; 15] = [
        SeriesId::ApiRequests,
        SeriesId::Api4xx,
        SeriesId::Api5xx,
        SeriesId::ApiLatencyP50,
        SeriesId::ApiLatencyP99,
        SeriesId::FunctionInvocations,
        SeriesId::FunctionErrors,
        SeriesId::FunctionThrottles,
        SeriesId::FunctionDurationP50,
        SeriesId::FunctionDurationP99,
        SeriesId::FunctionConcurrency,
        SeriesId::TableReadCapacity,
        SeriesId::TableWriteCapacity,
        SeriesId::TableReadThrottles,
        SeriesId::TableWriteThrottles,
    ];

    /// The stable key: the JSON key, and the GetMetricData query `Id` (`^[a-z][a-zA-Z0-9_]*$`).
    pub fn key(self) -> &'static str {
        match self {
            SeriesId::ApiRequests => "api_requests",
            SeriesId::Api4xx => "api_4xx",
            SeriesId::Api5xx => "api_5xx",
            SeriesId::ApiLatencyP50 => "api_latency_p50",
            SeriesId::ApiLatencyP99 => "api_latency_p99",
            SeriesId::FunctionInvocations => "function_invocations",
            SeriesId::FunctionErrors => "function_errors",
            SeriesId::FunctionThrottles => "function_throttles",
            SeriesId::FunctionDurationP50 => "function_duration_p50",
            SeriesId::FunctionDurationP99 => "function_duration_p99",
            SeriesId::FunctionConcurrency => "function_concurrency",
            SeriesId::TableReadCapacity => "table_read_capacity",
            SeriesId::TableWriteCapacity => "table_write_capacity",
            SeriesId::TableReadThrottles => "table_read_throttles",
            SeriesId::TableWriteThrottles => "table_write_throttles",
        }
    }

    #[cfg(test)]
    pub fn from_key(key: &str) -> Option<SeriesId> {
        SeriesId::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The label people read.
    pub fn label(self) -> &'static str {
        match self {
            SeriesId::ApiRequests => "requests",
            SeriesId::Api4xx => "4XX",
            SeriesId::Api5xx => "5XX",
            SeriesId::ApiLatencyP50 => "latency p50",
            SeriesId::ApiLatencyP99 => "latency p99",
            SeriesId::FunctionInvocations => "invocations",
            SeriesId::FunctionErrors => "errors",
            SeriesId::FunctionThrottles => "throttles",
            SeriesId::FunctionDurationP50 => "duration p50",
            SeriesId::FunctionDurationP99 => "duration p99",
            SeriesId::FunctionConcurrency => "concurrent",
            SeriesId::TableReadCapacity => "read units",
            SeriesId::TableWriteCapacity => "write units",
            SeriesId::TableReadThrottles => "read throttles",
            SeriesId::TableWriteThrottles => "write throttles",
        }
    }

    pub fn group(self) -> Group {
        match self {
            SeriesId::ApiRequests
            | SeriesId::Api4xx
            | SeriesId::Api5xx
            | SeriesId::ApiLatencyP50
            | SeriesId::ApiLatencyP99 => Group::Api,
            SeriesId::FunctionInvocations
            | SeriesId::FunctionErrors
            | SeriesId::FunctionThrottles
            | SeriesId::FunctionDurationP50
            | SeriesId::FunctionDurationP99
            | SeriesId::FunctionConcurrency => Group::Function,
            SeriesId::TableReadCapacity
            | SeriesId::TableWriteCapacity
            | SeriesId::TableReadThrottles
            | SeriesId::TableWriteThrottles => Group::Table,
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            SeriesId::ApiLatencyP50
            | SeriesId::ApiLatencyP99
            | SeriesId::FunctionDurationP50
            | SeriesId::FunctionDurationP99 => Unit::Milliseconds,
            SeriesId::TableReadCapacity | SeriesId::TableWriteCapacity => Unit::CapacityUnits,
            _ => Unit::Count,
        }
    }

    pub fn aggregate(self) -> Aggregate {
        match self {
            SeriesId::ApiLatencyP50
            | SeriesId::ApiLatencyP99
            | SeriesId::FunctionDurationP50
            | SeriesId::FunctionDurationP99 => Aggregate::Percentile,
            SeriesId::FunctionConcurrency => Aggregate::Maximum,
            _ => Aggregate::Sum,
        }
    }
}

impl Serialize for SeriesId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.key())
    }
}

/// The time the snapshot covers: `[start, end)`, in periods of `period_seconds` (seconds since
/// the epoch, multiples of the period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: u64,
    pub end: u64,
    pub period_seconds: u64,
}

impl Window {
    /// The last `periods` whole periods before `now` (seconds), the current partial one
    /// included: `[start, end)` with `end` the end of the current period.
    pub fn last(now: u64, period_seconds: u64, periods: u64) -> Window {
        let end = (now / period_seconds + 1) * period_seconds;
        Window { start: end - periods * period_seconds, end, period_seconds }
    }

    /// How many periods it holds.
    pub fn periods(&self) -> usize {
        ((self.end - self.start) / self.period_seconds) as usize
    }
}

/// One period's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// The period's start (seconds since the epoch).
    pub t: u64,
    pub v: f64,
}

/// One series over the window: a point per period that has data (CloudWatch returns none for a
/// period without any), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub id: SeriesId,
    pub points: Vec<Point>,
    /// `false`: the source does not measure it (e.g. DynamoDB capacity with `--local`).
    pub measured: bool,
}

impl Series {
    pub fn new(id: SeriesId, mut points: Vec<Point>) -> Series {
        points.sort_by_key(|p| p.t);
        Series { id, points, measured: true }
    }

    pub fn unmeasured(id: SeriesId) -> Series {
        Series { id, points: Vec::new(), measured: false }
    }

    /// The newest period's value.
    pub fn latest(&self) -> Option<f64> {
        self.points.last().map(|p| p.v)
    }

    pub fn max(&self) -> Option<f64> {
        self.points.iter().map(|p| p.v).reduce(f64::max)
    }

    /// The window's total, for a series of events per period.
    pub fn total(&self) -> Option<f64> {
        (self.id.aggregate() == Aggregate::Sum && self.measured).then(|| self.points.iter().map(|p| p.v).sum())
    }

    /// A value per period of `window`, oldest first (`None`: no data in that period).
    pub fn slots(&self, window: &Window) -> Vec<Option<f64>> {
        let mut slots = vec![None; window.periods()];
        for p in &self.points {
            if p.t >= window.start && p.t < window.end {
                slots[((p.t - window.start) / window.period_seconds) as usize] = Some(p.v);
            }
        }
        slots
    }
}

impl Serialize for Series {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Series", 7)?;
        st.serialize_field("unit", &self.id.unit())?;
        st.serialize_field("aggregate", &self.id.aggregate())?;
        st.serialize_field("measured", &self.measured)?;
        st.serialize_field("latest", &self.latest())?;
        st.serialize_field("max", &self.max())?;
        st.serialize_field("total", &self.total())?;
        st.serialize_field("points", &self.points)?;
        st.end()
    }
}

/// Where the numbers come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// One GetMetricData per refresh.
    Cloudwatch { region: String },
    /// `serve`'s counters (`GET /stats` on its admin listener).
    Local { admin: String },
}

/// A CloudWatch alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmValue {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmValue {
    pub fn parse(text: &str) -> Option<AlarmValue> {
        match text {
            "OK" => Some(AlarmValue::Ok),
            "ALARM" => Some(AlarmValue::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmValue::InsufficientData),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmValue::Ok => "OK",
            AlarmValue::Alarm => "ALARM",
            AlarmValue::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmState {
    pub name: String,
    pub state: AlarmValue,
    /// CloudWatch's `StateReason`.
    pub reason: String,
    /// When it entered the state (seconds since the epoch).
    pub since: Option<u64>,
}

/// The stack's alarms, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Alarms {
    /// One DescribeAlarms per refresh; alarms of the stack that do not exist are absent.
    Read { alarms: Vec<AlarmState> },
    /// `[alarms] enabled = false` in the config.
    Disabled,
    /// `--local`: `serve` has no alarms.
    NoneLocally,
}

/// One API key's requests today against its plan's quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyQuota {
    /// `standard`, `premium`.
    pub tier: String,
    pub id: String,
    pub name: String,
    /// The usage plan's name.
    pub plan: String,
    pub used_today: u64,
    pub quota_limit: Option<u64>,
    /// `DAY`, `WEEK`, `MONTH`.
    pub quota_period: Option<String>,
    /// What remains of the quota period (API Gateway's figure; `limit - used` locally).
    pub remaining: Option<u64>,
}

/// The keys' use, read less often than the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Keys {
    /// When they were read (seconds since the epoch).
    pub read_at: u64,
    /// How often they are read again, in seconds.
    pub every_seconds: u64,
    pub keys: Vec<KeyQuota>,
}

/// What the series are about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Names {
    /// The REST API (`ApiName`) and its stage.
    pub api: String,
    pub stage: String,
    pub function: String,
    /// What the API invokes: the function's alias.
    pub alias: String,
    pub table: String,
}

/// One refresh of the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub stack: String,
    pub source: Source,
    pub names: Names,
    /// When it was taken (seconds since the epoch).
    pub taken_at: u64,
    pub window: Window,
    /// Every [`SeriesId`], in that order (a JSON object keyed by [`SeriesId::key`]).
    #[serde(serialize_with = "series_map")]
    pub series: Vec<Series>,
    /// The function's reserved concurrency (the config's), or `serve`'s limit locally; `None`:
    /// it draws from the account's unreserved pool.
    pub reserved_concurrency: Option<u64>,
    pub alarms: Alarms,
    pub keys: Keys,
}

fn series_map<S: Serializer>(series: &[Series], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(series.len()))?;
    for one in series {
        m.serialize_entry(one.id.key(), one)?;
    }
    m.end()
}

impl Snapshot {
    #[cfg(test)]
    pub fn series(&self, id: SeriesId) -> Option<&Series> {
        self.series.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_query_ids_and_round_trip() {
        for id in SeriesId::ALL {
            let key = id.key();
            assert!(key.starts_with(|c: char| c.is_ascii_lowercase()), "{key}");
            assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{key}");
            assert_eq!(SeriesId::from_key(key), Some(id));
        }
    }

    #[test]
    fn a_window_ends_with_the_current_period_and_slots_place_points() {
        let w = Window::last(3_725, 60, 60);
        assert_eq!((w.start, w.end, w.periods()), (180, 3_780, 60));
        let s = Series::new(
            SeriesId::ApiRequests,
            vec![Point { t: 3_720, v: 4.0 }, Point { t: 180, v: 1.0 }, Point { t: 60, v: 9.0 }],
        );
        let slots = s.slots(&w);
        assert_eq!((slots[0], slots[59], slots[1]), (Some(1.0), Some(4.0), None));
        assert_eq!((s.latest(), s.max(), s.total()), (Some(4.0), Some(9.0), Some(14.0)));
        let p99 = Series::new(SeriesId::ApiLatencyP99, vec![Point { t: 180, v: 12.5 }]);
        assert_eq!(p99.total(), None, "a percentile has no total");
    }

    #[test]
    fn the_snapshot_is_typed_json() {
        let snap = Snapshot {
            stack: "s".into(),
            source: Source::Cloudwatch { region: "us-east-1".into() },
            names: Names {
                api: "s-api".into(),
                stage: "prod".into(),
                function: "fn".into(),
                alias: "live".into(),
                table: "t".into(),
            },
            taken_at: 7_200,
            window: Window::last(7_200, 60, 60),
            series: vec![
                Series::new(SeriesId::Api4xx, vec![Point { t: 7_080, v: 2.0 }]),
                Series::unmeasured(SeriesId::TableReadCapacity),
            ],
            reserved_concurrency: Some(5),
            alarms: Alarms::Read {
                alarms: vec![AlarmState {
                    name: "s-api-5xx".into(),
                    state: AlarmValue::Alarm,
                    reason: "test".into(),
                    since: None,
                }],
            },
            keys: Keys { read_at: 7_200, every_seconds: 60, keys: vec![] },
        };
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["series"]["api_4xx"]["latest"], 2.0);
        assert_eq!(v["series"]["api_4xx"]["unit"], "count");
        assert_eq!(v["series"]["table_read_capacity"]["measured"], false);
        assert_eq!(v["alarms"]["status"], "read");
        assert_eq!(v["alarms"]["alarms"][0]["state"], "ALARM");
        assert_eq!(v["source"]["kind"], "cloudwatch");
        assert_eq!(v["window"]["period_seconds"], 60);
    }
}
