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

fn form_encode(s: &str) -> String {
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
        let mut body = format!("Action={action}&Version=2016-11-15");
        for (k, v) in params {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.upstream))
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            // moto routes by the credential scope; it checks no signature.
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=strict-model/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
            )
            .header("content-length", body.len())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| format!("EC2 {action} to {}: {e}", self.upstream))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() { Ok(text) } else { Err(format!("EC2 {action} answered {status}: {text}")) }
    }

    /// One awsQuery call to another service of moto (IAM): the XML answer, or why it failed.
    pub async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, String> {
        let mut body = format!("Action={action}&Version={version}");
        for (k, v) in params {
            body.push_str(&format!("&{}={}", form_encode(k), form_encode(v)));
        }
        let req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.upstream))
            .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=strict-model/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .header("content-length", body.len())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(req, action).await
    }

    /// One DynamoDB call (JSON protocol) to moto: the JSON answer.
    pub async fn dynamodb(&self, operation: &str, input: &serde_json::Value) -> Result<serde_json::Value, String> {
        let body = input.to_string();
        let req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.upstream))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=strict-model/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .header("content-length", body.len())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let text = self.send(req, operation).await?;
        serde_json::from_str(&text).map_err(|e| format!("{operation}: {e}"))
    }

    /// A REST GET to moto's API Gateway (`/restapis/ID`): the JSON answer.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let req = Request::builder()
            .method("GET")
            .uri(format!("{}{path}", self.upstream))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=strict-model/20260101/us-east-1/apigateway/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let text = self.send(req, path).await?;
        serde_json::from_str(&text).map_err(|e| format!("GET {path}: {e}"))
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
        assert_eq!(form_encode("AWS Lambda VPC ENI-f/1"), "AWS%20Lambda%20VPC%20ENI-f%2F1");
    }
}
