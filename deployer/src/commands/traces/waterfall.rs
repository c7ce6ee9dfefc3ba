//! A trace drawn as a waterfall, as text of a given width: a header line, then one row per
//! segment and subsegment, indented by nesting, with a bar placed and sized to scale within the
//! trace's time span, its status, duration and HTTP status. Pure: the same trace and width give
//! the same lines.
//!
//! ```text
//! 1-6750a1b2-0123456789abcdef01234567  2024-12-04 18:38:42 UTC  POST https://abc123.execute-api…
//!   ok 200, 125.0 ms, 7 segments
//! API Gateway abc123/prod        |=======================================| ok          125.0 ms 200
//!   Lambda Invoke                |=====================================  | ok          119.0 ms 200
//! ```

use super::segment::{Span, Status, Trace, label};

/// Columns of everything right of the bar: ` status   duration http`.
const STATUS_WIDTH: usize = 8;
const DURATION_WIDTH: usize = 10;
const HTTP_WIDTH: usize = 3;

/// The narrowest width drawn; a narrower terminal wraps.
pub const MIN_WIDTH: usize = 60;

/// The lines of one trace, none longer than `width` characters (at least [`MIN_WIDTH`]).
pub fn render(trace: &Trace, width: usize) -> Vec<String> {
    let width = width.max(MIN_WIDTH);
    let rows = trace.rows();
    let mut lines = Vec::with_capacity(rows.len() + 2);
    let when = crate::clock::utc(trace.start.max(0.0) as u64);
    let head = match trace.request() {
        Some(r) => format!("{}  {when} UTC  {r}", trace.id),
        None => format!("{}  {when} UTC", trace.id),
    };
    lines.push(cut(&head, width));
    let status = match trace.http_status() {
        Some(code) => format!("{} {code}", trace.status().as_str()),
        None => trace.status().as_str().to_string(),
    };
    lines.push(cut(
        &format!(
            "  {status}, {}, {} segment{}",
            ms(trace.duration()),
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        ),
        width,
    ));
    let label_width = (width * 3 / 10).clamp(16, 40);
    // label, space, `|bar|`, space, status, space, duration, space, http.
    let bar_width = width - label_width - 1 - 2 - 1 - STATUS_WIDTH - 1 - DURATION_WIDTH - 1 - HTTP_WIDTH;
    for (depth, span) in rows {
        let name = format!("{}{}", "  ".repeat(depth), label(span));
        let status = if span.in_progress { "running".to_string() } else { span.status.as_str().to_string() };
        let http = span.http_status.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{:<label_width$} |{}| {:<STATUS_WIDTH$} {:>DURATION_WIDTH$} {:>HTTP_WIDTH$}",
            pad(&cut(&name, label_width), label_width),
            bar(span, trace, bar_width),
            status,
            ms(span.duration()),
            http,
        ));
    }
    lines
}

/// `12.3 ms`.
pub fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}

/// The span's bar in `cells` cells: where it starts and how long it lasts, relative to the trace
/// (at least one cell, so that a short span is seen). `=` for a span that succeeded, `#` for one
/// that failed.
pub fn bar(span: &Span, trace: &Trace, cells: usize) -> String {
    let total = trace.duration();
    let (from, to) = if total <= 0.0 {
        (0, cells)
    } else {
        let at = |t: f64| ((t - trace.start) / total * cells as f64).clamp(0.0, cells as f64);
        let from = (at(span.start).floor() as usize).min(cells.saturating_sub(1));
        let to = (at(span.end).ceil() as usize).clamp(from + 1, cells);
        (from, to)
    };
    let fill = if span.status == Status::Ok { '=' } else { '#' };
    (0..cells).map(|i| if (from..to).contains(&i) { fill } else { ' ' }).collect()
}

/// `text` cut to `max` characters, the last one `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `text` padded with spaces to `width` characters.
fn pad(text: &str, width: usize) -> String {
    let n = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(n)))
}

#[cfg(test)]
mod tests {
    use super::super::segment::tests::{TRACE, ok_post, parsed};
    use super::*;

    #[test]
    fn each_segment_is_a_row_indented_with_a_bar_to_scale_and_fits_the_width() {
        let t = parsed(TRACE, &ok_post());
        let lines = render(&t, 100);
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{lines:#?}");
        assert!(lines[0].starts_with(TRACE) && lines[0].contains("2024-12-04 18:38:42 UTC  POST https://"));
        assert_eq!(lines[1], "  ok 200, 125.0 ms, 7 segments");
        let row = |needle: &str| lines.iter().find(|l| l.contains(needle)).cloned().unwrap_or_default();
        let api = row("API Gateway abc123/prod");
        assert!(api.starts_with("API Gateway abc123/prod "), "{api}");
        assert!(api.ends_with("| ok         125.0 ms 200"), "{api}");
        let put = row("DynamoDB PutItem");
        assert!(put.starts_with("          DynamoDB PutItem"), "indented 5 levels: {put}");
        assert!(put.ends_with("| ok          40.0 ms 200"), "{put}");
        // The bar: the API's spans the whole width; PutItem's (70-110 ms of 125) its part.
        let bar_of = |l: &str| l.split('|').nth(1).unwrap_or_default().to_string();
        let (api_bar, put_bar) = (bar_of(&api), bar_of(&put));
        assert_eq!(api_bar.len(), 100 - 30 - 1 - 2 - 1 - 8 - 1 - 10 - 1 - 3);
        assert!(api_bar.chars().all(|c| c == '='), "{api_bar:?}");
        let first = put_bar.find('=').unwrap();
        let len = put_bar.matches('=').count();
        assert_eq!((first, len), (24, 14), "{put_bar:?}");
        let init = bar_of(&row("Initialization"));
        assert!(init.starts_with("=") || init.find('=').unwrap() <= 2, "{init:?}");
    }

    #[test]
    fn a_failed_span_is_drawn_with_hashes_and_a_narrow_width_still_fits() {
        let t0 = 1_733_337_522.0;
        let docs = [serde_json::json!({"id": "a", "name": "a-very-long-api-name-that-does-not-fit/prod",
            "origin": "AWS::ApiGateway::Stage", "start_time": t0, "end_time": t0 + 2.5, "fault": true,
            "http": {"response": {"status": 504}}})
        .to_string()];
        let t = parsed("1-6750a1b2-000000000000000000000001", &docs);
        let lines = render(&t, 40);
        assert!(lines.iter().all(|l| l.chars().count() <= MIN_WIDTH), "{lines:#?}");
        assert_eq!(lines[1], "  fault 504, 2500.0 ms, 1 segment");
        let row = &lines[2];
        assert!(row.contains('…') && row.contains("|###") && row.ends_with("| fault     2500.0 ms 504"), "{row}");
    }
}
