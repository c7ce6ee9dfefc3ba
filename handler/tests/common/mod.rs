//! A fake DynamoDB endpoint on 127.0.0.1: answers every request with one canned response and
//! records what it got. Enough to check the real SDK call (request shape, headers) and the
//! error mapping without AWS or moto.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{Context, LambdaEvent};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub const ROOT_EVENT: &str = include_str!("../fixtures/rest-root-post.json");

#[derive(Debug, Clone)]
pub struct Recorded {
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub struct FakeDynamo {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeDynamo {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// Starts the server on a free loopback port. It lives as long as the test's runtime.
pub async fn start(status: u16, body: &'static str) -> FakeDynamo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut headers = Vec::new();
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap(); // request line
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let len =
                    headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                let mut buf = vec![0; len];
                reader.read_exact(&mut buf).await.unwrap();
                seen.lock().unwrap().push(Recorded { headers, body: String::from_utf8(buf).unwrap() });
                let reason = if status == 200 { "OK" } else { "Bad Request" };
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/x-amz-json-1.0\r\n\
                     x-amzn-requestid: FAKE0REQUEST0ID\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = reader.into_inner();
                stream.write_all(resp.as_bytes()).await.unwrap();
                stream.shutdown().await.ok();
            });
        }
    });
    FakeDynamo { addr, requests }
}

/// A `POST /` event from the fixture with `body`.
pub fn post(body: &str) -> LambdaEvent<ApiGatewayProxyRequest> {
    let mut req: ApiGatewayProxyRequest = serde_json::from_str(ROOT_EVENT).unwrap();
    req.body = Some(body.to_owned());
    let mut ctx = Context::default();
    ctx.request_id = "lambda-request-id".to_owned();
    LambdaEvent::new(req, ctx)
}
