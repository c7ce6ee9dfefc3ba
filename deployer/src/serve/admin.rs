//! `serve`'s admin listener: what `traces --local` and `top --local` read (`crate::local`).
//!
//! On `127.0.0.1` only, an ephemeral port, never the API's (the API answers as API Gateway does;
//! traces are not its business). Two answers, from memory:
//! - `GET /traces?limit=N`: [`local::LocalTraces`], the newest N traces (all kept by default);
//! - `GET /stats`: [`local::ServeStats`].
//!
//! Anything else is 404. Its connections are held to the API's protections (`super::server`:
//! header-read and idle timeout, a bounded head, a connection cap, accept back-off), with a cap
//! of its own ([`ADMIN_CONNECTIONS`]) so that readers never take the API's.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};

use super::gateway::{Gateway, Recorders};
use super::server::{Limits, Server, serve_connection};
use crate::local::{self, KeyStats, ServeStats};
use crate::ui::Printer;

/// Open admin connections at most (a reader holds one at a time).
pub const ADMIN_CONNECTIONS: usize = 64;

/// What the admin listener reads.
#[derive(Clone)]
pub struct Admin {
    pub gateway: Arc<Gateway>,
    pub recorders: Recorders,
    pub stack: String,
    /// Seconds since the epoch.
    pub started: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Admin {
    /// The limits of its connections: the API's header timeout, a 16 KiB head, its own cap.
    pub fn limits(api: Limits) -> Limits {
        Limits { header_read: api.header_read, connections: ADMIN_CONNECTIONS, read_buffer: 16 * 1024 }
    }

    /// Serve `listener` until the task is aborted.
    pub async fn run(self, listener: tokio::net::TcpListener, limits: Limits, printer: Arc<dyn Printer>) {
        let mut server = Server::new(listener, limits, printer);
        let admin = Arc::new(self);
        loop {
            let (stream, _, permit) = server.accept().await;
            let admin = admin.clone();
            serve_connection(stream, permit, limits, move |req| {
                let admin = admin.clone();
                async move { admin.answer(&req) }
            });
        }
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET {
            return not_found();
        }
        match req.uri().path() {
            "/traces" => match limit(req.uri().query()) {
                Ok(limit) => json(StatusCode::OK, &self.recorders.traces.local(limit)),
                Err(why) => json(StatusCode::BAD_REQUEST, &serde_json::json!({ "message": why })),
            },
            "/stats" => json(StatusCode::OK, &self.stats(now_secs())),
            _ => not_found(),
        }
    }

    /// The counters as of `now` (seconds since the epoch).
    pub fn stats(&self, now: u64) -> ServeStats {
        let rules = self.gateway.rules();
        let pool = self.gateway.pool();
        let today = i64::try_from(now).unwrap_or(i64::MAX);
        let keys = rules
            .keys()
            .into_iter()
            .map(|k| KeyStats {
                id: k.id.clone(),
                name: k.name.clone(),
                plan: k.plan.name.clone(),
                used_today: self.gateway.used_today(&k.plan.id, &k.id, today),
                quota_limit: k.plan.quota.as_ref().map(|q| q.limit),
                quota_period: k.plan.quota.as_ref().map(|q| q.period.as_str().to_string()),
            })
            .collect();
        ServeStats {
            stack: self.stack.clone(),
            stage: rules.stage.clone(),
            started: self.started,
            now,
            minutes: self.recorders.stats.minutes(now),
            running: u32::try_from(pool.busy()).unwrap_or(u32::MAX),
            max_running: u32::try_from(pool.max()).unwrap_or(u32::MAX),
            keys,
        }
    }
}

/// `limit=N` of the query: every trace kept when absent. Pure.
fn limit(query: Option<&str>) -> Result<usize, String> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "limit")
        .map(|(_, v)| v);
    match value {
        None => Ok(local::KEPT_TRACES),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(local::KEPT_TRACES))
            .map_err(|_| format!("limit={v}: expected a number of traces (0 to {})", local::KEPT_TRACES)),
    }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn not_found() -> Response<Full<Bytes>> {
    json(StatusCode::NOT_FOUND, &serde_json::json!({ "message": "Not Found: GET /traces or GET /stats" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_a_number_within_what_is_kept() {
        assert_eq!(limit(None), Ok(local::KEPT_TRACES));
        assert_eq!(limit(Some("limit=5")), Ok(5));
        assert_eq!(limit(Some("x=1&limit=0")), Ok(0));
        assert_eq!(limit(Some("limit=100000")), Ok(local::KEPT_TRACES));
        assert!(limit(Some("limit=ten")).unwrap_err().contains("limit=ten"));
    }
}
