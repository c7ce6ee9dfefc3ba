//! EC2 calls the model makes to moto itself, not through the proxy's recording: the Lambda ENIs
//! that AWS would create and release, and subnet zone lookups.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

use crate::proxy::Upstream;

/// moto's EC2 API, reached directly.
#[derive(Clone)]
pub struct MotoEc2 {
    pub upstream: String,
    pub client: Upstream,
}

/// The text of every `<tag>...</tag>` in an XML document, in order (moto's EC2 answers are flat
/// enough for this).
pub fn xml_all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// The first `<tag>...</tag>`.
pub fn xml_first<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    xml_all(xml, tag).into_iter().next()
}

/// RFC 3986 `%`-encoding: every byte but the unreserved characters (form values, and API
/// Gateway's tag paths that carry an ARN).
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl MotoEc2 {
    /// One EC2 query call; the XML answer, or why it failed.
    pub async fn call(&self, action: &str, params: &[(String, String)]) -> Result<String, String> {
        self.query("ec2", "2016-11-15", action, params).await.map_err(|e| format!("EC2 {e}"))
    }

    /// One awsQuery call to a service of moto (EC2, IAM): the XML answer, or why it failed.
    pub async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, String> {
        let mut body = format!("Action={action}&Version={version}");
        for (k, v) in params {
            body.push_str(&format!("&{}={}", percent_encode(k), percent_encode(v)));
        }
        let req = self.request("POST", "/", service, Some("application/x-www-form-urlencoded; charset=utf-8"), body)?;
        self.send(req, action).await
    }

    /// One DynamoDB call (JSON protocol) to moto: the JSON answer.
    pub async fn dynamodb(&self, operation: &str, input: &serde_json::Value) -> Result<serde_json::Value, String> {
        let mut req = self.request("POST", "/", "dynamodb", Some("application/x-amz-json-1.0"), input.to_string())?;
        let target = format!("DynamoDB_20120810.{operation}").parse().map_err(|e| format!("{operation}: {e}"))?;
        req.headers_mut().insert("x-amz-target", target);
        let text = self.send(req, operation).await?;
        serde_json::from_str(&text).map_err(|e| format!("{operation}: {e}"))
    }

    /// A REST GET to moto's API Gateway (`/restapis/ID`): the JSON answer.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let req = self.request("GET", path, "apigateway", None, String::new())?;
        let text = self.send(req, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }

    /// A REST GET to moto's Lambda: the JSON answer.
    pub async fn get_lambda_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let req = self.request("GET", path, "lambda", None, String::new())?;
        let text = self.send(req, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
    }

    /// A REST PATCH to moto's API Gateway with a JSON body: the JSON answer.
    pub async fn patch_json(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, String> {
        let req = self.request("PATCH", path, "apigateway", Some("application/json"), body.to_string())?;
        let text = self.send(req, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("PATCH {path}: {e}"))
    }

    /// A request to moto for `service`: moto routes by the credential scope of the authorization
    /// header and checks no signature.
    fn request(
        &self,
        method: &str,
        path: &str,
        service: &str,
        content_type: Option<&str>,
        body: String,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.upstream)).header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=strict-model/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            ),
        );
        if let Some(ct) = content_type {
            req = req.header("content-type", ct).header("content-length", body.len());
        }
        req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())
    }

    async fn send(&self, req: Request<Full<Bytes>>, what: &str) -> Result<String, String> {
        let resp = self.client.request(req).await.map_err(|e| format!("{what} to {}: {e}", self.upstream))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() { Ok(text) } else { Err(format!("{what} answered {status}: {text}")) }
    }

    /// The region's zones, `(name, ID)`, in moto's order.
    pub async fn zones(&self) -> Result<Vec<(String, String)>, String> {
        let xml = self.call("DescribeAvailabilityZones", &[]).await?;
        let (names, ids) = (xml_all(&xml, "zoneName"), xml_all(&xml, "zoneId"));
        if names.len() != ids.len() {
            return Err(format!("DescribeAvailabilityZones: {} names for {} IDs", names.len(), ids.len()));
        }
        Ok(names.into_iter().zip(ids).map(|(n, i)| (n.to_string(), i.to_string())).collect())
    }

    /// The zone ID (`use1-az6`) of a subnet.
    pub async fn subnet_zone_id(&self, subnet: &str) -> Result<String, String> {
        let xml = self.call("DescribeSubnets", &[("SubnetId.1".into(), subnet.into())]).await?;
        xml_first(&xml, "availabilityZoneId").map(str::to_string).ok_or_else(|| format!("no zone for {subnet}: {xml}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_texts() {
        let xml = "<r><item><zoneName>a</zoneName></item><item><zoneName>b</zoneName></item></r>";
        assert_eq!(xml_all(xml, "zoneName"), ["a", "b"]);
        assert_eq!(xml_first(xml, "item"), Some("<zoneName>a</zoneName>"));
        assert_eq!(xml_first(xml, "nope"), None);
        assert_eq!(percent_encode("AWS Lambda VPC ENI-f/1"), "AWS%20Lambda%20VPC%20ENI-f%2F1");
    }
}
