//! How `movies-stack top` is shown: a [`Snapshot`] drawn as a ratatui frame on the terminal the
//! [`Screen`] owns (raw mode and the alternate screen, restored on quit, on error and on panic),
//! or as text (`--once`, or a stdout that is not a terminal). The command builds the snapshot;
//! nothing here calls AWS.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};

use super::Printer;
use crate::dashboard::{Aggregate, AlarmValue, Alarms, Group, Series, SeriesId, Snapshot, Source, Unit};
use crate::events::Event;

/// What the dashboard says besides the snapshot: how often it refreshes, and the last refresh's
/// failure (the previous numbers stay on screen meanwhile).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub every: Duration,
    pub error: Option<String>,
    /// The last warning of the run (e.g. an SDK retry), shown until the next one.
    pub warning: Option<String>,
}

/// Whether `top` can draw live: stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

// ------------------------------------------------------------------ numbers

/// A value with its unit: `42`, `12.5 ms`, `1.25 s`, `3.5`.
pub fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Milliseconds if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Unit::Milliseconds => format!("{} ms", trim(v)),
        Unit::Count | Unit::CapacityUnits => trim(v),
    }
}

/// Whole numbers without decimals, others with one (two below 1).
fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        thousands(v as i64)
    } else if v.abs() < 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The newest value and the window's figure: `42/min  Σ 1,234` (events), `12.5 ms  max 40 ms`.
fn figures(s: &Series, reserved: Option<u64>) -> (String, String) {
    if !s.measured {
        return ("n/a".into(), "not measured".into());
    }
    let unit = s.id.unit();
    let now = match (s.latest(), s.id.aggregate()) {
        (None, _) => "-".to_string(),
        (Some(v), Aggregate::Sum) => format!("{}/min", value(unit, v)),
        (Some(v), _) => value(unit, v),
    };
    let window = match (s.id, s.id.aggregate()) {
        (SeriesId::FunctionConcurrency, _) => match reserved {
            Some(r) => format!("of {r} reserved"),
            None => "unreserved".to_string(),
        },
        (_, Aggregate::Sum) => format!("Σ {}", value(unit, s.total().unwrap_or(0.0))),
        (_, _) => match s.max() {
            Some(m) => format!("max {}", value(unit, m)),
            None => "no data".to_string(),
        },
    };
    (now, window)
}

/// The window's periods in `width` buckets (a bucket of events sums them, others keep the
/// highest), oldest first.
pub fn buckets(slots: &[Option<f64>], width: usize, aggregate: Aggregate) -> Vec<Option<f64>> {
    if width == 0 || slots.is_empty() {
        return Vec::new();
    }
    if width >= slots.len() {
        return slots.to_vec();
    }
    (0..width)
        .map(|i| {
            let part = &slots[i * slots.len() / width..(i + 1) * slots.len() / width];
            let values = part.iter().flatten().copied();
            match aggregate {
                Aggregate::Sum => values.reduce(|a, b| a + b),
                _ => values.reduce(f64::max),
            }
        })
        .collect()
}

/// A sparkline as text: ` ▁▂▃▄▅▆▇█`, scaled to the highest bucket; `·` where there is no data.
pub fn spark_text(buckets: &[Option<f64>]) -> String {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = buckets.iter().flatten().copied().fold(0.0_f64, f64::max);
    buckets
        .iter()
        .map(|b| match b {
            None => '·',
            Some(_) if max <= 0.0 => LEVELS[0],
            Some(v) => LEVELS[((v / max) * 8.0).round().clamp(0.0, 8.0) as usize],
        })
        .collect()
}

fn group_title(s: &Snapshot, group: Group) -> String {
    let n = &s.names;
    match group {
        Group::Api => format!("API Gateway {} stage {}", n.api, n.stage),
        Group::Function => format!("Lambda {} alias {}", n.function, n.alias),
        Group::Table => format!("DynamoDB {}", n.table),
    }
}

fn source_text(s: &Snapshot) -> String {
    match &s.source {
        Source::Cloudwatch { region } => format!("CloudWatch {region}"),
        Source::Local { admin } => format!("serve at {admin} (local counters)"),
    }
}

fn window_text(s: &Snapshot) -> String {
    let w = &s.window;
    format!(
        "{} to {} UTC, {}-second periods",
        crate::clock::utc(w.start),
        crate::clock::utc(w.end).split_whitespace().last().unwrap_or_default(),
        w.period_seconds
    )
}

fn alarm_color(v: AlarmValue) -> Color {
    match v {
        AlarmValue::Ok => Color::Green,
        AlarmValue::Alarm => Color::Red,
        AlarmValue::InsufficientData => Color::Yellow,
    }
}

fn alarms_note(a: &Alarms) -> Option<&'static str> {
    match a {
        Alarms::Read { alarms } if alarms.is_empty() => Some("none found: run `movies-stack up`"),
        Alarms::Read { .. } => None,
        Alarms::Disabled => Some("off in the config ([alarms] enabled = false)"),
        Alarms::NoneLocally => Some("none locally: serve has no CloudWatch alarms"),
    }
}

/// A key's use today against its quota: `1,234 used, 8,766 of 10,000 left this day`.
fn key_use(k: &crate::dashboard::KeyQuota) -> String {
    let quota = match (k.quota_limit, &k.quota_period) {
        (Some(limit), Some(period)) => match k.remaining {
            Some(r) => {
                format!("{} of {} left this {}", thousands(r as i64), thousands(limit as i64), period.to_lowercase())
            }
            None => format!("quota {} per {}", thousands(limit as i64), period.to_lowercase()),
        },
        _ => "no quota".into(),
    };
    format!("{} used today; {quota}", thousands(k.used_today as i64))
}

fn key_line(k: &crate::dashboard::KeyQuota) -> String {
    format!("{:<9} {} ({}): {}", k.tier, k.id, k.plan, key_use(k))
}

fn keys_note(s: &Snapshot) -> String {
    match &s.source {
        Source::Cloudwatch { .. } => format!(
            "API Gateway GetUsage, read every {} s (last {} UTC), apart from the metrics' one GetMetricData",
            s.keys.every_seconds,
            crate::clock::utc(s.keys.read_at).split_whitespace().last().unwrap_or_default()
        ),
        Source::Local { .. } => "serve's own count of today's requests per key".into(),
    }
}

// ------------------------------------------------------------------ text (--once)

/// The snapshot as text, for `top --once` and a stdout that is not a terminal.
pub fn text(s: &Snapshot) -> String {
    const SPARK: usize = 30;
    let mut lines = vec![
        format!("movies-stack top: stack {} | {}", s.stack, source_text(s)),
        format!("{} (sparklines: {SPARK} buckets of 2 minutes, oldest first)", window_text(s)),
    ];
    for group in [Group::Api, Group::Function, Group::Table] {
        lines.push(String::new());
        lines.push(group_title(s, group));
        for series in s.series.iter().filter(|x| x.id.group() == group) {
            let (now, window) = figures(series, s.reserved_concurrency);
            let spark = if series.measured {
                spark_text(&buckets(&series.slots(&s.window), SPARK, series.id.aggregate()))
            } else {
                " ".repeat(SPARK)
            };
            lines.push(format!("  {:<15} {spark} {now:>12}  {window}", series.id.label()));
        }
    }
    lines.push(String::new());
    lines.push("Alarms".into());
    if let Some(note) = alarms_note(&s.alarms) {
        lines.push(format!("  {note}"));
    }
    if let Alarms::Read { alarms } = &s.alarms {
        for a in alarms {
            lines.push(format!("  {:<17} {}", a.state.as_str(), a.name));
        }
    }
    lines.push(String::new());
    lines.push(format!("Keys ({})", keys_note(s)));
    if s.keys.keys.is_empty() {
        lines.push("  no API key found".into());
    }
    for k in &s.keys.keys {
        lines.push(format!("  {}", key_line(k)));
    }
    lines.join("\n")
}

// ------------------------------------------------------------------ the frame

/// The dashboard in `frame`: a header, the API, function, table and alarm boxes with a
/// sparkline per series, the keys, and a footer.
pub fn draw(frame: &mut Frame, s: &Snapshot, status: &Status) {
    let [header, api, function, table, bottom, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!(" top {} ", s.stack), bold),
            Span::raw(format!(
                "| {} | last hour by the minute | every {} s | {} UTC",
                source_text(s),
                status.every.as_secs(),
                crate::clock::utc(s.taken_at).split_whitespace().last().unwrap_or_default()
            )),
        ])),
        header,
    );
    series_box(frame, s, Group::Api, api);
    series_box(frame, s, Group::Function, function);
    series_box(frame, s, Group::Table, table);
    let [alarms, keys] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    alarms_box(frame, s, alarms);
    keys_box(frame, s, keys);
    let footer_line = match (&status.error, &status.warning) {
        (Some(e), _) => {
            Line::styled(format!(" refresh failed (showing the previous one): {e}"), Style::default().fg(Color::Red))
        }
        (None, Some(w)) => Line::styled(format!(" {w}"), Style::default().fg(Color::Yellow)),
        (None, None) => Line::raw(" q / Esc / Ctrl-C: quit"),
    };
    frame.render_widget(Paragraph::new(footer_line), footer);
}

fn series_box(frame: &mut Frame, s: &Snapshot, group: Group, area: Rect) {
    let block = Block::bordered().title(format!(" {} ", group_title(s, group)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows: Vec<&Series> = s.series.iter().filter(|x| x.id.group() == group).collect();
    let areas = Layout::vertical(rows.iter().map(|_| Constraint::Length(1))).split(inner);
    for (series, row) in rows.iter().zip(areas.iter()) {
        let [label, spark, numbers] =
            Layout::horizontal([Constraint::Length(15), Constraint::Fill(1), Constraint::Length(26)]).areas(*row);
        frame.render_widget(Paragraph::new(series.id.label()), label);
        let (now, window) = figures(series, s.reserved_concurrency);
        let alert = matches!(
            series.id,
            SeriesId::Api5xx
                | SeriesId::FunctionErrors
                | SeriesId::FunctionThrottles
                | SeriesId::TableReadThrottles
                | SeriesId::TableWriteThrottles
        ) && series.latest().is_some_and(|v| v > 0.0);
        let color = if alert { Color::Red } else { Color::Cyan };
        if series.measured {
            let data = buckets(&series.slots(&s.window), usize::from(spark.width), series.id.aggregate());
            // The widget draws integers: hundredths keep fractional values (latency) apart.
            let scaled: Vec<Option<u64>> =
                data.iter().map(|v| v.map(|v| (v.max(0.0) * 100.0).round() as u64)).collect();
            let max = scaled.iter().flatten().copied().max().unwrap_or(0).max(1);
            frame.render_widget(Sparkline::default().data(scaled).max(max).style(Style::default().fg(color)), spark);
        }
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(format!("{now:>10}"), Style::default().fg(color).add_modifier(Modifier::BOLD)),
                Span::raw(format!(" {window}")),
            ])),
            numbers,
        );
    }
}

fn alarms_box(frame: &mut Frame, s: &Snapshot, area: Rect) {
    let block = Block::bordered().title(" Alarms ");
    let mut lines = Vec::new();
    if let Some(note) = alarms_note(&s.alarms) {
        lines.push(Line::raw(note));
    }
    if let Alarms::Read { alarms } = &s.alarms {
        for a in alarms {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{:<17}", a.state.as_str()),
                    Style::default().fg(alarm_color(a.state)).add_modifier(Modifier::BOLD),
                ),
                // The stack is in the header: the alarm's own part of its name is what differs.
                Span::raw(a.name.strip_prefix(&format!("{}-", s.stack)).unwrap_or(&a.name).to_string()),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn keys_box(frame: &mut Frame, s: &Snapshot, area: Rect) {
    let title = match &s.source {
        Source::Cloudwatch { .. } => format!(" Keys today (GetUsage every {} s) ", s.keys.every_seconds),
        Source::Local { .. } => " Keys today (serve's count) ".to_string(),
    };
    let mut lines = Vec::new();
    for k in &s.keys.keys {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<9}", k.tier), Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{} ({})", k.id, k.plan)),
        ]));
        lines.push(Line::raw(format!("  {}", key_use(k))));
    }
    if lines.is_empty() {
        lines.push(Line::raw("no API key found"));
    }
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title)), area);
}

// ------------------------------------------------------------------ the terminal

/// What the user asked for while the dashboard waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `q`, Esc or Ctrl-C.
    Quit,
    /// The terminal was resized (or another key pressed): draw again now.
    Redraw,
}

/// The terminal while `top` draws on it: raw mode and the alternate screen from [`Screen::open`]
/// until it is dropped (after `q`, on an error or an early return); ratatui's panic hook restores
/// it on a panic. Keys are read on a thread of their own.
pub struct Screen {
    terminal: ratatui::DefaultTerminal,
    input: tokio::sync::mpsc::UnboundedReceiver<Input>,
    stop: Arc<AtomicBool>,
}

impl Screen {
    pub fn open() -> std::io::Result<Screen> {
        let terminal = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                ratatui::restore();
                return Err(e);
            }
        };
        let (tx, input) = tokio::sync::mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            use ratatui::crossterm::event::{self, Event as Term, KeyCode, KeyEventKind, KeyModifiers};
            while !stopped.load(Ordering::Relaxed) {
                let Ok(true) = event::poll(Duration::from_millis(100)) else { continue };
                let what = match event::read() {
                    Ok(Term::Key(k)) if k.kind == KeyEventKind::Press => match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => Input::Quit,
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Input::Quit,
                        _ => Input::Redraw,
                    },
                    Ok(Term::Resize(..)) => Input::Redraw,
                    Ok(_) => continue,
                    Err(_) => Input::Quit,
                };
                if tx.send(what).is_err() {
                    break;
                }
            }
        });
        Ok(Screen { terminal, input, stop })
    }

    pub fn draw(&mut self, snapshot: &Snapshot, status: &Status) -> std::io::Result<()> {
        self.terminal.draw(|f| draw(f, snapshot, status)).map(drop)
    }

    /// The next input, or `None` when `timeout` passed without one.
    pub async fn wait(&mut self, timeout: Duration) -> Option<Input> {
        tokio::time::timeout(timeout, self.input.recv()).await.ok().map(|i| i.unwrap_or(Input::Quit))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}

/// The printer while the [`Screen`] owns the terminal: events and results are held, and go to
/// the command's printer once the terminal is restored ([`Held::release`]); the last warning is
/// shown in the footer meanwhile.
#[derive(Default)]
pub struct Held {
    events: Mutex<Vec<Event>>,
    out: Mutex<Vec<String>>,
}

impl Printer for Held {
    fn event(&self, event: Event) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }

    fn out(&self, text: &str) {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).push(text.to_string());
    }
}

impl Held {
    /// The last warning (or SDK retry) held, as the footer shows it.
    pub fn last_warning(&self) -> Option<String> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().rev().find_map(|e| match e {
            Event::Warning(m) => Some(format!("warning: {m}")),
            Event::SdkRetry { operation, attempt } => Some(format!("aws: retried {operation} (attempt {attempt})")),
            _ => None,
        })
    }

    /// Everything held, to `to`, in order.
    pub fn release(&self, to: &dyn Printer) {
        for e in std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner())) {
            to.event(e);
        }
        for text in std::mem::take(&mut *self.out.lock().unwrap_or_else(|p| p.into_inner())) {
            to.out(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::dashboard::{AlarmState, KeyQuota, Keys, Names, Point, Window};

    fn snapshot() -> Snapshot {
        let window = Window::last(1_700_000_000, 60, 60);
        let at = |m: u64| window.start + m * 60;
        let series = SeriesId::ALL
            .into_iter()
            .map(|id| match id {
                SeriesId::ApiRequests => {
                    Series::new(id, vec![Point { t: at(50), v: 10.0 }, Point { t: at(59), v: 42.0 }])
                }
                SeriesId::Api5xx => Series::new(id, vec![Point { t: at(59), v: 2.0 }]),
                SeriesId::ApiLatencyP99 => Series::new(id, vec![Point { t: at(59), v: 1250.0 }]),
                SeriesId::ApiLatencyP50 => Series::new(id, vec![Point { t: at(59), v: 12.5 }]),
                SeriesId::FunctionConcurrency => Series::new(id, vec![Point { t: at(59), v: 3.0 }]),
                SeriesId::TableReadCapacity => Series::unmeasured(id),
                _ => Series::new(id, vec![]),
            })
            .collect();
        Snapshot {
            stack: "movies-dev".into(),
            source: Source::Cloudwatch { region: "us-east-1".into() },
            names: Names {
                api: "movies-dev-api".into(),
                stage: "prod".into(),
                function: "apigw_handler".into(),
                alias: "live".into(),
                table: "demo_table".into(),
            },
            taken_at: 1_700_000_000,
            window,
            series,
            reserved_concurrency: Some(10),
            alarms: Alarms::Read {
                alarms: vec![
                    AlarmState {
                        name: "movies-dev-api-5xx".into(),
                        state: AlarmValue::Alarm,
                        reason: String::new(),
                        since: None,
                    },
                    AlarmState {
                        name: "movies-dev-function-errors".into(),
                        state: AlarmValue::Ok,
                        reason: String::new(),
                        since: None,
                    },
                ],
            },
            keys: Keys {
                read_at: 1_699_999_980,
                every_seconds: 60,
                keys: vec![KeyQuota {
                    tier: "standard".into(),
                    id: "k1".into(),
                    name: "movies-dev-standard".into(),
                    plan: "Standard".into(),
                    used_today: 1234,
                    quota_limit: Some(10_000),
                    quota_period: Some("DAY".into()),
                    remaining: Some(8766),
                }],
            },
        }
    }

    /// The buffer's text, one string per row.
    fn rows(backend: &TestBackend) -> Vec<String> {
        let buffer = backend.buffer();
        let width = usize::from(buffer.area.width);
        buffer.content().chunks(width).map(|row| row.iter().map(|c| c.symbol()).collect::<String>()).collect()
    }

    #[test]
    fn the_frame_shows_labels_numbers_sparklines_alarms_and_keys_at_100_by_30() {
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
        let status = Status { every: Duration::from_secs(5), ..Status::default() };
        terminal.draw(|f| draw(f, &snapshot(), &status)).unwrap();
        let rows = rows(terminal.backend());
        let screen = rows.join("\n");
        println!("{screen}");
        for want in [
            "top movies-dev",
            "CloudWatch us-east-1",
            "every 5 s",
            "last hour by the minute",
            "API Gateway movies-dev-api stage prod",
            "Lambda apigw_handler alias live",
            "DynamoDB demo_table",
            "requests",
            "42/min",
            "Σ 52",
            "1.25 s",
            "12.5 ms",
            "3",
            "of 10 reserved",
            "not measured",
            "ALARM",
            "ALARM            api-5xx",
            "OK               function-errors",
            "standard",
            "1,234 used today; 8,766 of 10,000 left this day",
            "Keys today (GetUsage every 60 s)",
            "q / Esc / Ctrl-C: quit",
        ] {
            assert!(screen.contains(want), "{want:?} not on the screen:\n{screen}");
        }
        // The requests' sparkline: the last minute is the highest bar.
        let requests = rows.iter().find(|r| r.contains("requests")).unwrap();
        assert!(requests.contains('█'), "{requests}");
        // The ALARM state is red, OK green.
        let buffer = terminal.backend().buffer();
        let cell = |needle: &str| {
            let (y, row) = rows.iter().enumerate().find(|(_, r)| r.contains(needle)).unwrap();
            let x = row.chars().take_while(|_| true).collect::<Vec<_>>();
            let col = row.find(needle).map(|byte| row[..byte].chars().count()).unwrap();
            let _ = x;
            buffer[(col as u16, y as u16)].fg
        };
        assert_eq!(cell("ALARM"), Color::Red);
        assert_eq!(cell("OK "), Color::Green);
    }

    #[test]
    fn a_failed_refresh_is_said_in_the_footer() {
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
        let status = Status {
            every: Duration::from_secs(5),
            error: Some("CloudWatch GetMetricData: Throttling".into()),
            warning: None,
        };
        terminal.draw(|f| draw(f, &snapshot(), &status)).unwrap();
        let last = rows(terminal.backend()).pop().unwrap();
        assert!(
            last.contains("refresh failed (showing the previous one): CloudWatch GetMetricData: Throttling"),
            "{last}"
        );
    }

    #[test]
    fn the_text_has_every_series_alarm_and_key() {
        let text = text(&snapshot());
        for want in [
            "movies-stack top: stack movies-dev | CloudWatch us-east-1",
            "latency p99",
            "1.25 s",
            "42/min",
            "2/min",
            "ALARM             movies-dev-api-5xx",
            "OK                movies-dev-function-errors",
            "standard  k1 (Standard): 1,234 used today; 8,766 of 10,000 left this day",
            "read units",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        let requests = text.lines().find(|l| l.contains("requests")).unwrap();
        assert!(requests.contains('█') && requests.contains('·'), "{requests}");
    }

    #[test]
    fn buckets_sum_events_and_keep_the_highest_percentile() {
        let slots = [Some(1.0), None, Some(3.0), Some(5.0), None, None];
        assert_eq!(buckets(&slots, 3, Aggregate::Sum), vec![Some(1.0), Some(8.0), None]);
        assert_eq!(buckets(&slots, 3, Aggregate::Percentile), vec![Some(1.0), Some(5.0), None]);
        assert_eq!(buckets(&slots, 10, Aggregate::Sum), slots.to_vec());
        assert_eq!(spark_text(&[Some(0.0), Some(4.0), Some(8.0), None]), " ▄█·");
        assert_eq!((value(Unit::Count, 1234.0), value(Unit::Milliseconds, 0.5)), ("1,234".into(), "0.50 ms".into()));
    }

    #[test]
    fn held_events_reach_the_printer_after_the_screen() {
        let held = Held::default();
        held.event(Event::Warning("slow".into()));
        held.out("result");
        assert_eq!(held.last_warning().as_deref(), Some("warning: slow"));
        let rec = super::super::Recorder::default();
        held.release(&rec);
        assert_eq!(rec.events.lock().unwrap().len(), 1);
        assert_eq!(*rec.out.lock().unwrap(), ["result"]);
    }
}
