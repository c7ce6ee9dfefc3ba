//! The stack's CloudWatch metrics, as `top` reads them: every series of the dashboard
//! ([`SeriesId`]) in ONE GetMetricData call per refresh (the last hour at a 1-minute period, so
//! that the sparklines come from the same answer as the numbers).
//!
//! The namespaces, metric names, statistics and dimensions are the ones AWS publishes for this
//! stack's resources:
//!
//! - API Gateway (REST), `AWS/ApiGateway`, dimensions `ApiName` + `Stage` (API Gateway developer
//!   guide, "Amazon API Gateway dimensions and metrics"): `Count` ("The SampleCount statistic
//!   represents this metric"), `4XXError` and `5XXError` (`Sum`: the errors' count), `Latency`
//!   (milliseconds; p50, p99).
//! - Lambda, `AWS/Lambda`: what the API invokes is the alias `live`, so invocations, errors,
//!   throttles and duration are the alias' (dimensions `FunctionName` + `Resource` =
//!   `name:live`, Lambda's per-alias metrics), as the alarms watch them (`alarm.rs`);
//!   `ConcurrentExecutions` is the function's (dimension `FunctionName`, `Maximum`), as its
//!   reservation is. Lambda sends nothing for a period without invocations.
//! - DynamoDB, `AWS/DynamoDB`, dimension `TableName` (DynamoDB developer guide, "DynamoDB
//!   Metrics and dimensions"; aggregated at one-minute intervals): `ConsumedReadCapacityUnits`,
//!   `ConsumedWriteCapacityUnits` (`Sum`: the units used in the period, on-demand tables too),
//!   `ReadThrottleEvents`, `WriteThrottleEvents` (`Sum`).
//!
//! GetMetricData takes up to 500 queries and returns up to 100,800 data points per call
//! (`MaxDatapoints`' default), paginating beyond: 15 series of 60 points are one page. Query ids
//! must match `^[a-z][a-zA-Z0-9_]*$` (the series' keys do). `cloudwatch:GetMetricData` supports
//! no resource-level permission (Service Authorization Reference): the policy grants it on `*`.

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy};
use aws_smithy_types::DateTime;

use super::Ctx;
use crate::aws::AwsResultExt;
use crate::dashboard::{Point, Series, SeriesId, Window};
use crate::error::Result;

const SERVICE: &str = "CloudWatch";

/// What the metrics are about: the names the config fixes.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The REST API's name (`ApiName`) and its stage.
    pub api: String,
    pub stage: String,
    pub function: String,
    pub table: String,
}

/// One series as CloudWatch knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub namespace: &'static str,
    pub metric: &'static str,
    /// (name, value).
    pub dimensions: Vec<(&'static str, String)>,
    /// `Sum`, `SampleCount`, `Maximum` or a percentile (`p99`).
    pub stat: &'static str,
}

/// The metric and statistic behind `id`, for these resources.
pub fn spec(id: SeriesId, t: &Targets) -> MetricSpec {
    let api = || vec![("ApiName", t.api.clone()), ("Stage", t.stage.clone())];
    let alias = || {
        vec![
            ("FunctionName", t.function.clone()),
            ("Resource", format!("{}:{}", t.function, super::function_alias::ALIAS)),
        ]
    };
    let table = || vec![("TableName", t.table.clone())];
    let (namespace, metric, dimensions, stat) = match id {
        SeriesId::ApiRequests => ("AWS/ApiGateway", "Count", api(), "SampleCount"),
        SeriesId::Api4xx => ("AWS/ApiGateway", "4XXError", api(), "Sum"),
        SeriesId::Api5xx => ("AWS/ApiGateway", "5XXError", api(), "Sum"),
        SeriesId::ApiLatencyP50 => ("AWS/ApiGateway", "Latency", api(), "p50"),
        SeriesId::ApiLatencyP99 => ("AWS/ApiGateway", "Latency", api(), "p99"),
        SeriesId::FunctionInvocations => ("AWS/Lambda", "Invocations", alias(), "Sum"),
        SeriesId::FunctionErrors => ("AWS/Lambda", "Errors", alias(), "Sum"),
        SeriesId::FunctionThrottles => ("AWS/Lambda", "Throttles", alias(), "Sum"),
        SeriesId::FunctionDurationP50 => ("AWS/Lambda", "Duration", alias(), "p50"),
        SeriesId::FunctionDurationP99 => ("AWS/Lambda", "Duration", alias(), "p99"),
        SeriesId::FunctionConcurrency => {
            ("AWS/Lambda", "ConcurrentExecutions", vec![("FunctionName", t.function.clone())], "Maximum")
        }
        SeriesId::TableReadCapacity => ("AWS/DynamoDB", "ConsumedReadCapacityUnits", table(), "Sum"),
        SeriesId::TableWriteCapacity => ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", table(), "Sum"),
        SeriesId::TableReadThrottles => ("AWS/DynamoDB", "ReadThrottleEvents", table(), "Sum"),
        SeriesId::TableWriteThrottles => ("AWS/DynamoDB", "WriteThrottleEvents", table(), "Sum"),
    };
    MetricSpec { namespace, metric, dimensions, stat }
}

/// Every series of the dashboard, one query each, at the window's period. Pure.
pub fn queries(t: &Targets, window: &Window) -> Vec<MetricDataQuery> {
    SeriesId::ALL
        .into_iter()
        .map(|id| {
            let s = spec(id, t);
            let metric = Metric::builder()
                .namespace(s.namespace)
                .metric_name(s.metric)
                .set_dimensions(Some(
                    s.dimensions.iter().map(|(k, v)| Dimension::builder().name(*k).value(v).build()).collect(),
                ))
                .build();
            let stat = MetricStat::builder()
                .metric(metric)
                .period(i32::try_from(window.period_seconds).unwrap_or(60))
                .stat(s.stat)
                .build();
            MetricDataQuery::builder().id(id.key()).metric_stat(stat).return_data(true).build()
        })
        .collect()
}

/// The series from GetMetricData's results (every page's), each [`SeriesId`] once, in order; a
/// series CloudWatch returned nothing for has no point. Pure.
pub fn series_from(results: &[MetricDataResult]) -> Vec<Series> {
    SeriesId::ALL
        .into_iter()
        .map(|id| {
            let points = results
                .iter()
                .filter(|r| r.id() == Some(id.key()))
                .flat_map(|r| r.timestamps().iter().zip(r.values()))
                .filter_map(|(t, v)| Some(Point { t: u64::try_from(t.secs()).ok()?, v: *v }))
                .collect();
            Series::new(id, points)
        })
        .collect()
}

/// The dashboard's series over `window`: one GetMetricData (a second page only beyond 100,800
/// data points, which 15 series of an hour never reach).
pub async fn read(ctx: &Ctx, targets: &Targets, window: &Window) -> Result<Vec<Series>> {
    let secs = |s: u64| DateTime::from_secs(i64::try_from(s).unwrap_or(i64::MAX));
    let pages: Vec<_> = ctx
        .aws
        .cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries(targets, window)))
        .start_time(secs(window.start))
        .end_time(secs(window.end))
        .scan_by(ScanBy::TimestampAscending)
        .into_paginator()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await
        .aws(SERVICE, "GetMetricData")?;
    let results: Vec<MetricDataResult> = pages.iter().flat_map(|p| p.metric_data_results().to_vec()).collect();
    Ok(series_from(&results))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Targets {
        Targets { api: "s-api".into(), stage: "prod".into(), function: "fn".into(), table: "t".into() }
    }

    #[test]
    fn one_query_per_series_with_the_dimensions_aws_publishes() {
        let w = Window::last(7_200, 60, 60);
        let q = queries(&targets(), &w);
        assert_eq!(q.len(), SeriesId::ALL.len());
        let row = |i: usize| {
            let s = q[i].metric_stat().unwrap();
            let m = s.metric().unwrap();
            let dims: Vec<String> =
                m.dimensions().iter().map(|d| format!("{}={}", d.name().unwrap(), d.value().unwrap())).collect();
            (
                q[i].id().unwrap().to_string(),
                m.namespace().unwrap().to_string(),
                m.metric_name().unwrap().to_string(),
                dims,
                s.stat().unwrap().to_string(),
                s.period(),
            )
        };
        let api = vec!["ApiName=s-api".to_string(), "Stage=prod".to_string()];
        let alias = vec!["FunctionName=fn".to_string(), "Resource=fn:live".to_string()];
        assert_eq!(
            row(0),
            (
                "api_requests".into(),
                "AWS/ApiGateway".into(),
                "Count".into(),
                api.clone(),
                "SampleCount".into(),
                Some(60)
            )
        );
        assert_eq!(
            row(4),
            ("api_latency_p99".into(), "AWS/ApiGateway".into(), "Latency".into(), api, "p99".into(), Some(60))
        );
        assert_eq!(row(8).3, alias);
        assert_eq!((row(8).2, row(8).4), ("Duration".to_string(), "p50".to_string()));
        assert_eq!(
            (row(10).2, row(10).3, row(10).4),
            ("ConcurrentExecutions".into(), vec!["FunctionName=fn".to_string()], "Maximum".into())
        );
        assert_eq!(
            (row(12).1, row(12).2, row(12).3),
            ("AWS/DynamoDB".into(), "ConsumedWriteCapacityUnits".into(), vec!["TableName=t".to_string()])
        );
        assert!(q.iter().all(|q| q.return_data() == Some(true)));
        // The ids are unique.
        let ids: std::collections::BTreeSet<&str> = q.iter().filter_map(|q| q.id()).collect();
        assert_eq!(ids.len(), q.len());
    }

    #[test]
    fn results_become_series_in_order_and_a_missing_one_is_empty() {
        let r = MetricDataResult::builder()
            .id("api_4xx")
            .timestamps(DateTime::from_secs(120))
            .timestamps(DateTime::from_secs(60))
            .values(3.0)
            .values(1.0)
            .build();
        let series = series_from(&[r]);
        assert_eq!(series.len(), SeriesId::ALL.len());
        let s = series.iter().find(|s| s.id == SeriesId::Api4xx).unwrap();
        assert_eq!(s.points, vec![Point { t: 60, v: 1.0 }, Point { t: 120, v: 3.0 }]);
        assert!(series.iter().filter(|s| s.id != SeriesId::Api4xx).all(|s| s.points.is_empty() && s.measured));
    }
}
