//! Connections: what a client may hold of `serve` before a request reaches the gateway.
//!
//! - **A timer for hyper** ([`TokioTimer`]): without one hyper's header-read timeout is off, and
//!   a request whose head never ends holds its connection (and file descriptor) forever.
//! - **Header-read timeout, which is also the keep-alive idle timeout**: hyper starts the timer
//!   when it starts waiting for a request head, on a new connection and again after each
//!   response, and closes the connection when the head is not complete in time. So a client that
//!   sends its headers slowly, and a keep-alive connection left idle, are both closed after
//!   [`Limits::header_read`].
//! - **A cap on open connections**: past it, a new connection is answered 503 (best effort, one
//!   non-blocking write) and closed at once; the connections already open are not touched.
//! - **A bounded request head**: hyper's read buffer (which holds the head while it is parsed)
//!   is capped at [`Limits::read_buffer`]; a larger head is refused 431 by hyper.
//! - **Accept errors back off**: out of file descriptors (EMFILE), `accept` fails at once, every
//!   time, while the connection stays in the backlog; retrying at once would spin a core.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::events::{Event, ServeEvent};
use crate::ui::Printer;

/// What one connection may hold, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must be complete this long after the connection starts waiting for it
    /// (a new connection, or a keep-alive one after its last response).
    pub header_read: Duration,
    /// Open connections at most.
    pub connections: usize,
    /// hyper's read buffer per connection, at most (the request head must fit).
    pub read_buffer: usize,
}

/// File descriptors kept for everything but client connections: the listener, the access log,
/// the AWS SDK's connections, and per environment its Runtime API listener, connections and
/// output pipes (4 per environment × 64 at most).
const RESERVED_FDS: usize = 512;

impl Limits {
    /// 10 s to send a request head (API Gateway documents none; nginx's `client_header_timeout`
    /// is 60 s, Apache's mod_reqtimeout 20–40 s): long for any real client on a LAN, short enough
    /// that a slow-header client holds its descriptor 10 s at a time. 64 KiB of head (API
    /// Gateway allows 10 KB of headers). Connections: as many as the process may open, less
    /// [`RESERVED_FDS`], at most 10 000.
    pub fn for_this_process() -> Limits {
        let fds = open_files_limit().unwrap_or(1024);
        Limits {
            header_read: Duration::from_secs(10),
            connections: fds.saturating_sub(RESERVED_FDS).clamp(64, 10_000),
            read_buffer: 64 * 1024,
        }
    }
}

/// The soft limit on open files (`Max open files` in /proc/self/limits; None where unreadable).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&text)
}

/// The soft `Max open files` of a /proc/PID/limits text. Pure.
fn parse_open_files_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The delay before retrying a failed `accept`: 10 ms, doubling to 1 s; back to none after a
/// success. Pure: the caller sleeps.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// One more failure: how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        let delay = Self::FIRST.saturating_mul(1 << self.failures.min(16)).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// The listening socket with its connection cap and accept back-off.
pub struct Server {
    listener: TcpListener,
    limits: Limits,
    permits: Arc<Semaphore>,
    backoff: Backoff,
    /// Refused since the last line about it, and when that line was written (one a second).
    refused: usize,
    refused_said: Option<Instant>,
    printer: Arc<dyn Printer>,
}

/// The answer to a connection over the cap, written once without waiting.
const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 33\r\n\r\n{\"message\":\"Service Unavailable\"}";

impl Server {
    pub fn new(listener: TcpListener, limits: Limits, printer: Arc<dyn Printer>) -> Server {
        Server {
            listener,
            permits: Arc::new(Semaphore::new(limits.connections)),
            limits,
            backoff: Backoff::default(),
            refused: 0,
            refused_said: None,
            printer,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The next connection within the cap. Those over it are answered 503 and closed here; a
    /// failed `accept` is retried after [`Backoff`]. Cancel-safe (for `select!`): a connection
    /// is only taken from the listener by the call that returns it.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff.succeeded();
                    match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => return (stream, peer, permit),
                        Err(_) => self.refuse(stream),
                    }
                }
                Err(e) => {
                    let delay = self.backoff.failed();
                    let event = ServeEvent::AcceptFailed { error: e.to_string(), retry_in: delay };
                    self.printer.event(Event::Serve(event));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn refuse(&mut self, stream: TcpStream) {
        let _ = stream.try_write(OVER_CAP);
        drop(stream);
        self.refused += 1;
        if self.refused_said.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            let event = ServeEvent::ConnectionsRefused { refused: self.refused, open: self.limits.connections };
            self.printer.event(Event::Serve(event));
            self.refused = 0;
            self.refused_said = Some(Instant::now());
        }
    }
}

/// Serve one HTTP/1.1 connection (keep-alive) with `handle`, within `limits`; the permit is
/// held until it closes.
pub fn serve_connection<F, Fut>(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    limits: Limits,
    handle: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let _permit = permit;
        let handle = Arc::new(handle);
        let svc = hyper::service::service_fn(move |req| {
            let handle = handle.clone();
            async move { Ok::<_, Infallible>(handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .max_buf_size(limits.read_buffer)
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn accept_failures_back_off_up_to_a_second() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| b.failed().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert!((0..100).all(|_| b.failed() == Duration::from_secs(1)), "no overflow");
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(10));
    }

    #[test]
    fn the_open_files_limit_is_the_soft_one() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             127979               127979               processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(text), Some(1024));
        assert_eq!(parse_open_files_limit("Max open files unlimited unlimited files"), None);
        assert_eq!(parse_open_files_limit(""), None);
        let limits = Limits::for_this_process();
        assert!((64..=10_000).contains(&limits.connections), "{limits:?}");
    }

    /// A server of "ok" answers within `limits`, on a free loopback port.
    async fn ok_server(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = Server::new(listener, limits, Arc::new(crate::ui::Recorder::default()));
        tokio::spawn(async move {
            loop {
                let (stream, _, permit) = server.accept().await;
                serve_connection(stream, permit, server.limits(), |_req| async {
                    Response::new(Full::new(Bytes::from_static(b"ok")))
                });
            }
        });
        addr
    }

    /// One GET on `conn` (keep-alive); the status line.
    fn get(conn: &mut std::net::TcpStream) -> String {
        conn.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
    }

    /// Reads until the server closes; how long that took (None: still open after `within`).
    fn closed_within(conn: &mut std::net::TcpStream, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        conn.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return None;
                }
                Err(_) => return Some(start.elapsed()),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_the_cap_new_connections_are_refused_and_open_ones_kept() {
        let limits = Limits { header_read: Duration::from_secs(5), connections: 2, read_buffer: 16 * 1024 };
        let addr = ok_server(limits).await;
        tokio::task::spawn_blocking(move || {
            let mut a = std::net::TcpStream::connect(addr).unwrap();
            let mut b = std::net::TcpStream::connect(addr).unwrap();
            assert_eq!(get(&mut a), "HTTP/1.1 200 OK");
            assert_eq!(get(&mut b), "HTTP/1.1 200 OK");
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut answer = String::new();
            let _ = c.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 503"), "over the cap: {answer:?}");
            assert!(answer.contains("retry-after: 1"), "{answer:?}");
            // The open ones still work; once one closes, a new connection is served.
            assert_eq!(get(&mut a), "HTTP/1.1 200 OK");
            drop(b);
            std::thread::sleep(Duration::from_millis(100));
            let mut d = std::net::TcpStream::connect(addr).unwrap();
            assert_eq!(get(&mut d), "HTTP/1.1 200 OK");
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_heads_and_idle_connections_are_closed_after_the_header_timeout() {
        let timeout = Duration::from_millis(500);
        let limits = Limits { header_read: timeout, connections: 16, read_buffer: 16 * 1024 };
        let addr = ok_server(limits).await;
        tokio::task::spawn_blocking(move || {
            // A head that never ends.
            let mut slow = std::net::TcpStream::connect(addr).unwrap();
            slow.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nx-a: ").unwrap();
            let took = closed_within(&mut slow, Duration::from_secs(5)).expect("closed");
            assert!(took >= timeout / 2 && took < timeout * 4, "closed after {took:?}");
            // A keep-alive connection after its answer, idle.
            let mut idle = std::net::TcpStream::connect(addr).unwrap();
            assert_eq!(get(&mut idle), "HTTP/1.1 200 OK");
            let took = closed_within(&mut idle, Duration::from_secs(5)).expect("closed");
            assert!(took >= timeout / 2 && took < timeout * 4, "idle closed after {took:?}");
            // A connection that never sends anything.
            let mut silent = std::net::TcpStream::connect(addr).unwrap();
            assert!(closed_within(&mut silent, Duration::from_secs(5)).is_some());
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_head_larger_than_the_buffer_is_refused() {
        let limits = Limits { header_read: Duration::from_secs(5), connections: 4, read_buffer: 16 * 1024 };
        let addr = ok_server(limits).await;
        tokio::task::spawn_blocking(move || {
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            let big = format!("GET / HTTP/1.1\r\nhost: t\r\nx-big: {}\r\n\r\n", "a".repeat(64 * 1024));
            let _ = conn.write_all(big.as_bytes());
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut answer = String::new();
            let _ = conn.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
        })
        .await
        .unwrap();
    }
}
