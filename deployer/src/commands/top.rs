//! `movies-stack top`: a live dashboard of the stack in the terminal, refreshed every
//! `--interval` seconds, or one snapshot (`--once`, `--output json`, or a stdout that is not a
//! terminal).
//!
//! One refresh is ONE GetMetricData (every series of the last hour at a 1-minute period:
//! `resources::metrics`) and ONE DescribeAlarms (the stack's alarms by name), sent together.
//! Each key's use today is API Gateway's GetUsage, one per key: read at the first refresh and
//! then once a minute ([`USAGE_EVERY`]), so that a refresh stays one GetMetricData (GetUsage
//! counts requests per day; a minute-old figure loses nothing a dashboard shows). The keys and
//! plans themselves are observed once, at the start.
//!
//! `--local` reads the counters of the `movies-stack serve` of this stack running on this
//! machine (`crate::local`) instead, turned into the same snapshot ([`from_serve`]); `serve`
//! has no alarms, and what it does not measure is shown as such.
//!
//! The command builds the [`Snapshot`]; the ui layer draws it (`ui::top`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Output, TopArgs};
use crate::config::Config;
use crate::ctx::{Ctx, Timeouts};
use crate::dashboard::{Alarms, KeyQuota, Keys, Names, Point, Series, SeriesId, Snapshot, Source, Window};
use crate::error::{Error, Result, exit};
use crate::local::{Discovery, ServeStats};
use crate::resources::metrics::{self, Targets};
use crate::resources::{Name, alarm, api_key, function_alias, rest_api, usage_plan};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;
use crate::ui::top::{Held, Input, Screen, Status};

/// How often each key's use today is read again (GetUsage), in seconds.
pub const USAGE_EVERY: u64 = 60;
/// The metrics' period and how many of them the window holds: the last hour by the minute.
const PERIOD: u64 = 60;
const PERIODS: u64 = 60;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &TopArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let live = !args.once && output == Output::Human && crate::ui::top::stdout_is_terminal();
    // While the dashboard owns the terminal, the session's events wait in `held`.
    let held = Arc::new(Held::default());
    let session_printer: Arc<dyn Printer> = if live { held.clone() } else { printer.clone() };
    let mut source = if args.local {
        Reader::Local(crate::local::find(&config.stack)?)
    } else {
        Reader::Cloud(Box::new(Cloud::open(config, settings, session_printer).await?))
    };
    let first = source.snapshot(config).await;
    if !live {
        let snap = first?;
        match output {
            Output::Json => printer.out(&serde_json::to_string(&snap).expect("a snapshot serializes")),
            Output::Human => printer.out(&crate::ui::top::text(&snap)),
        }
        return Ok(exit::OK);
    }
    let result = match first {
        Ok(snap) => dashboard(&mut source, config, snap, Duration::from_secs(args.interval), &held).await,
        Err(e) => Err(e),
    };
    held.release(&*printer);
    result.map(|()| exit::OK)
}

/// The live dashboard until `q`, Esc, Ctrl-C or SIGTERM; the terminal is restored when the
/// [`Screen`] is dropped, whatever ends it.
async fn dashboard(
    source: &mut Reader,
    config: &Config,
    mut snap: Snapshot,
    every: Duration,
    held: &Held,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::other(format!("top: SIGTERM: {e}")))?;
    let mut screen = Screen::open().map_err(|e| Error::other(format!("top: cannot use the terminal: {e}")))?;
    let mut status = Status { every, error: None, warning: None };
    let drawn = |screen: &mut Screen, snap: &Snapshot, status: &Status| {
        screen.draw(snap, status).map_err(|e| Error::other(format!("top: drawing: {e}")))
    };
    loop {
        status.warning = held.last_warning();
        drawn(&mut screen, &snap, &status)?;
        let next = Instant::now() + every;
        // Wait for the next refresh; keys and resizes meanwhile.
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::select! {
                input = screen.wait(left) => match input {
                    Some(Input::Quit) => return Ok(()),
                    Some(Input::Redraw) => drawn(&mut screen, &snap, &status)?,
                    None => break,
                },
                _ = term.recv() => return Ok(()),
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
        // The refresh, interruptible by `q`.
        let refreshed = tokio::select! {
            r = source.snapshot(config) => r,
            input = screen.wait(Duration::MAX) => match input {
                Some(Input::Quit) => return Ok(()),
                _ => continue,
            },
            _ = term.recv() => return Ok(()),
        };
        match refreshed {
            Ok(s) => {
                snap = s;
                status.error = None;
            }
            Err(e) => status.error = Some(e.to_string()),
        }
    }
}

/// Where the numbers come from.
enum Reader {
    Cloud(Box<Cloud>),
    Local(Discovery),
}

impl Reader {
    async fn snapshot(&mut self, config: &Config) -> Result<Snapshot> {
        let now = now_secs();
        match self {
            Reader::Cloud(cloud) => cloud.snapshot(config, now).await,
            Reader::Local(found) => {
                let stats: ServeStats = crate::local::get(found, "/stats").await?;
                Ok(from_serve(&stats, config, &found.admin))
            }
        }
    }
}

fn now_secs() -> u64 {
    u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0)
}

/// One key of the stack and its plan, as observed at the start.
#[derive(Debug, Clone)]
struct KeyRef {
    tier: &'static str,
    id: String,
    name: String,
    plan_id: String,
    plan: String,
    quota: Option<(u64, String)>,
}

/// The stack in AWS: its session, what the metrics are about, its alarms' names, its keys.
struct Cloud {
    ctx: Arc<Ctx>,
    region: String,
    targets: Targets,
    /// `None`: `[alarms] enabled = false`.
    alarms: Option<Vec<String>>,
    keys: Vec<KeyRef>,
    /// The last GetUsage reads.
    usage: Option<Keys>,
}

impl Cloud {
    /// The session, who we are, and the stack's keys and plans (observed once).
    async fn open(config: &Config, settings: &crate::aws::AwsSettings, printer: Arc<dyn Printer>) -> Result<Cloud> {
        let session = Session::open(settings, config, printer, CtrlC::Exits, Timeouts::default()).await?;
        let tiers = ["standard", "premium"];
        let names: Vec<Name> = tiers.iter().flat_map(|t| [api_key::id(t).name(), usage_plan::id(t).name()]).collect();
        let live = session.observe_live(config, &names).await?;
        let mut keys = Vec::new();
        for tier in tiers {
            let (Ok(key), Ok(plan)) = (live.require(api_key::id(tier)), live.require(usage_plan::id(tier))) else {
                // A stack not (fully) deployed: its keys are simply not shown.
                continue;
            };
            keys.push(KeyRef {
                tier,
                id: key.id.clone(),
                name: key.name.clone(),
                plan_id: plan.id.clone(),
                plan: plan.name.clone(),
                quota: plan.quota.as_ref().map(|(limit, period)| (u64::try_from(*limit).unwrap_or(0), period.clone())),
            });
        }
        let watched = alarm::Watched {
            function: &config.function.name,
            api: &rest_api::api_name(config),
            stage: &config.api.stage,
        };
        let alarms = config
            .alarms
            .enabled
            .then(|| alarm::alarms(&config.stack, &watched, &config.alarms).into_iter().map(|a| a.name).collect());
        let ctx = session.ctx.clone();
        Ok(Cloud { region: ctx.aws.region.clone(), ctx, targets: targets(config), alarms, keys, usage: None })
    }

    /// One refresh: one GetMetricData and one DescribeAlarms together, and GetUsage per key when
    /// the last read is [`USAGE_EVERY`] old.
    async fn snapshot(&mut self, config: &Config, now: u64) -> Result<Snapshot> {
        let window = Window::last(now, PERIOD, PERIODS);
        let usage_due = self.usage.as_ref().is_none_or(|k| now >= k.read_at + USAGE_EVERY);
        let ctx = &self.ctx;
        let (series, alarms, usage) = tokio::join!(
            metrics::read(ctx, &self.targets, &window),
            async {
                match &self.alarms {
                    Some(names) => alarm::states(ctx, names).await.map(|alarms| Alarms::Read { alarms }),
                    None => Ok(Alarms::Disabled),
                }
            },
            async {
                match usage_due {
                    true => read_usage(ctx, &self.keys, now).await.map(Some),
                    false => Ok(None),
                }
            },
        );
        let (series, alarms) = (series?, alarms?);
        if let Some(keys) = usage? {
            self.usage = Some(keys);
        }
        Ok(Snapshot {
            stack: config.stack.clone(),
            source: Source::Cloudwatch { region: self.region.clone() },
            names: names(config),
            taken_at: now,
            window,
            series,
            reserved_concurrency: config.function.reserved_concurrency.and_then(|r| u64::try_from(r).ok()),
            alarms,
            keys: self.usage.clone().unwrap_or(Keys { read_at: now, every_seconds: USAGE_EVERY, keys: Vec::new() }),
        })
    }
}

/// Today's use of each key (GetUsage for today, UTC: the day API Gateway's quotas count), as
/// `usage` reads it.
async fn read_usage(ctx: &Ctx, keys: &[KeyRef], now: u64) -> Result<Keys> {
    let today = crate::clock::date(i64::try_from(now / 86_400).unwrap_or(0));
    let reads = keys.iter().map(|k| async {
        let rows = usage_plan::usage(ctx, &k.plan_id, &k.id, &today, &today)
            .await
            .map_err(|e| e.for_resource(api_key::id(k.tier)))?;
        let last = rows.last();
        Ok::<_, Error>(KeyQuota {
            tier: k.tier.to_string(),
            id: k.id.clone(),
            name: k.name.clone(),
            plan: k.plan.clone(),
            used_today: last.map(|r| u64::try_from(r.used).unwrap_or(0)).unwrap_or(0),
            quota_limit: k.quota.as_ref().map(|(l, _)| *l),
            quota_period: k.quota.as_ref().map(|(_, p)| p.clone()),
            remaining: last.and_then(|r| u64::try_from(r.remaining).ok()),
        })
    });
    let keys = futures::future::try_join_all(reads).await?;
    Ok(Keys { read_at: now, every_seconds: USAGE_EVERY, keys })
}

/// What the metrics are about, from the config.
fn targets(config: &Config) -> Targets {
    Targets {
        api: rest_api::api_name(config),
        stage: config.api.stage.clone(),
        function: config.function.name.clone(),
        table: config.table.name.clone(),
    }
}

fn names(config: &Config) -> Names {
    Names {
        api: rest_api::api_name(config),
        stage: config.api.stage.clone(),
        function: config.function.name.clone(),
        alias: function_alias::ALIAS.to_string(),
        table: config.table.name.clone(),
    }
}

/// `serve`'s counters as the dashboard's snapshot. Pure. What `serve` measures stands for
/// CloudWatch's series as follows: requests, 4XX, 5XX and latency as API Gateway's; the requests
/// that reached the function and those it failed as Lambda's invocations and errors; the
/// integration's latency (the function as `serve` times it) as Lambda's duration; the
/// environments busy now against `serve`'s limit as the concurrency; the throttled DynamoDB calls
/// as write throttles (the handler only writes: PutItem). Lambda throttles (`serve` queues
/// instead) and DynamoDB's consumed capacity are not measured locally.
pub fn from_serve(stats: &ServeStats, config: &Config, admin: &str) -> Snapshot {
    let window = Window::last(stats.now, PERIOD, PERIODS);
    let minutes = || stats.minutes.iter().filter(|m| m.start >= window.start && m.start < window.end);
    let counted = |id: SeriesId, f: fn(&crate::local::MinuteStats) -> u64| {
        Series::new(id, minutes().map(|m| Point { t: m.start, v: f(m) as f64 }).collect())
    };
    let timed = |id: SeriesId, f: fn(&crate::local::MinuteStats) -> Option<f64>| {
        Series::new(id, minutes().filter_map(|m| Some(Point { t: m.start, v: f(m)? })).collect())
    };
    let series = SeriesId::ALL
        .into_iter()
        .map(|id| match id {
            SeriesId::ApiRequests => counted(id, |m| m.requests),
            SeriesId::Api4xx => counted(id, |m| m.status_4xx),
            SeriesId::Api5xx => counted(id, |m| m.status_5xx),
            SeriesId::ApiLatencyP50 => timed(id, |m| m.latency_p50_ms),
            SeriesId::ApiLatencyP99 => timed(id, |m| m.latency_p99_ms),
            SeriesId::FunctionInvocations => counted(id, |m| m.invocations),
            SeriesId::FunctionErrors => counted(id, |m| m.function_errors),
            SeriesId::FunctionDurationP50 => timed(id, |m| m.integration_p50_ms),
            SeriesId::FunctionDurationP99 => timed(id, |m| m.integration_p99_ms),
            SeriesId::FunctionConcurrency => {
                Series::new(id, vec![Point { t: stats.now / PERIOD * PERIOD, v: f64::from(stats.running) }])
            }
            SeriesId::TableWriteThrottles => counted(id, |m| m.dynamodb_throttles),
            SeriesId::FunctionThrottles
            | SeriesId::TableReadCapacity
            | SeriesId::TableWriteCapacity
            | SeriesId::TableReadThrottles => Series::unmeasured(id),
        })
        .collect();
    let keys = stats
        .keys
        .iter()
        .map(|k| KeyQuota {
            tier: k
                .name
                .strip_prefix(&format!("{}-", config.stack))
                .map(str::to_string)
                .unwrap_or_else(|| k.plan.to_lowercase()),
            id: k.id.clone(),
            name: k.name.clone(),
            plan: k.plan.clone(),
            used_today: k.used_today,
            quota_limit: k.quota_limit,
            quota_period: k.quota_period.clone(),
            remaining: k.quota_limit.map(|l| l.saturating_sub(k.used_today)),
        })
        .collect();
    Snapshot {
        stack: stats.stack.clone(),
        source: Source::Local { admin: admin.to_string() },
        names: Names { stage: stats.stage.clone(), ..names(config) },
        taken_at: stats.now,
        window,
        series,
        reserved_concurrency: Some(u64::from(stats.max_running)),
        alarms: Alarms::NoneLocally,
        keys: Keys { read_at: stats.now, every_seconds: 0, keys },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{KeyStats, MinuteStats};

    fn config() -> Config {
        crate::config::parse("stack = \"movies-dev\"\n[function]\nreserved_concurrency = 8").unwrap()
    }

    #[test]
    fn serve_counters_become_the_same_snapshot() {
        let now = 1_700_000_050;
        let minute = now / 60 * 60;
        let stats = ServeStats {
            stack: "movies-dev".into(),
            stage: "dev".into(),
            started: now - 600,
            now,
            minutes: vec![
                MinuteStats {
                    start: minute - 120,
                    requests: 5,
                    status_4xx: 2,
                    status_5xx: 1,
                    throttled: 1,
                    invocations: 3,
                    function_errors: 1,
                    latency_p50_ms: Some(12.0),
                    latency_p99_ms: Some(80.5),
                    integration_p50_ms: Some(9.0),
                    integration_p99_ms: Some(70.0),
                    dynamodb_calls: 3,
                    dynamodb_throttles: 1,
                },
                // Older than the hour: left out.
                MinuteStats { start: minute - 7_200, requests: 99, ..MinuteStats::default() },
                MinuteStats { start: minute, requests: 1, invocations: 1, ..MinuteStats::default() },
            ],
            running: 2,
            max_running: 4,
            keys: vec![KeyStats {
                id: "k1".into(),
                name: "movies-dev-standard".into(),
                plan: "movies-dev-Standard".into(),
                used_today: 40,
                quota_limit: Some(10_000),
                quota_period: Some("DAY".into()),
            }],
        };
        let s = from_serve(&stats, &config(), "http://127.0.0.1:4000");
        let get = |id| s.series(id).unwrap();
        assert_eq!(
            get(SeriesId::ApiRequests).points,
            vec![Point { t: minute - 120, v: 5.0 }, Point { t: minute, v: 1.0 }]
        );
        assert_eq!(get(SeriesId::ApiRequests).total(), Some(6.0));
        assert_eq!(get(SeriesId::Api4xx).latest(), Some(0.0));
        assert_eq!(get(SeriesId::Api5xx).max(), Some(1.0));
        assert_eq!(
            get(SeriesId::ApiLatencyP99).points,
            vec![Point { t: minute - 120, v: 80.5 }],
            "no latency without a request"
        );
        assert_eq!(get(SeriesId::FunctionDurationP50).latest(), Some(9.0));
        assert_eq!(get(SeriesId::FunctionErrors).total(), Some(1.0));
        assert_eq!(get(SeriesId::FunctionConcurrency).latest(), Some(2.0));
        assert_eq!(get(SeriesId::TableWriteThrottles).total(), Some(1.0));
        for id in [
            SeriesId::FunctionThrottles,
            SeriesId::TableReadCapacity,
            SeriesId::TableWriteCapacity,
            SeriesId::TableReadThrottles,
        ] {
            assert!(!get(id).measured, "{id:?}");
        }
        assert_eq!(s.reserved_concurrency, Some(4), "serve's limit, not the config's");
        assert_eq!(s.alarms, Alarms::NoneLocally);
        assert_eq!(s.names.stage, "dev");
        assert_eq!(s.source, Source::Local { admin: "http://127.0.0.1:4000".into() });
        let k = &s.keys.keys[0];
        assert_eq!((k.tier.as_str(), k.used_today, k.remaining), ("standard", 40, Some(9_960)));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["alarms"]["status"], "none_locally");
        assert_eq!(json["series"]["table_read_capacity"]["measured"], false);
    }

    #[test]
    fn the_metrics_are_about_the_configs_resources() {
        let t = targets(&config());
        assert_eq!(
            (t.api.as_str(), t.stage.as_str(), t.function.as_str(), t.table.as_str()),
            ("movies-dev", "prod", "apigw_handler", "demo_table")
        );
    }
}
