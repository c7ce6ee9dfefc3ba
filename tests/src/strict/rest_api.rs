//! API Gateway applies the writes to one REST API's resources, methods and integrations one at a
//! time: a second write that arrives while another is in flight answers 409 ConflictException
//! "Unable to complete operation due to concurrent modification. Please try again later."
//! (hashicorp/terraform-provider-aws#776 and #16439, which terraform answers by retrying the error
//! on every API Gateway call since v3.24.0; carlnordenfelt/aws-api-gateway-for-cloudformation#27
//! saw the same message in 2016). moto applies concurrent writes at once.
//!
//! A write is in flight from its arrival until its answer leaves the proxy (see
//! [`super::Model::rest_api_write`]), and lasts at least [`super::Timings::apigateway_write`]: moto
//! answers in a millisecond, where AWS takes long enough for a concurrent write to meet it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Exchange;
use crate::proxy::Fault;

/// The writes on a REST API's resource tree (`/restapis/{id}/resources...`): the operations
/// the reports name (PutMethod, PutIntegration, PutMethodResponse, PutIntegrationResponse and
/// their deletes: terraform-provider-aws#16439), and the rest of the same family.
pub const WRITES: [&str; 15] = [
    "CreateResource",
    "UpdateResource",
    "DeleteResource",
    "PutMethod",
    "UpdateMethod",
    "DeleteMethod",
    "PutMethodResponse",
    "UpdateMethodResponse",
    "DeleteMethodResponse",
    "PutIntegration",
    "UpdateIntegration",
    "DeleteIntegration",
    "PutIntegrationResponse",
    "UpdateIntegrationResponse",
    "DeleteIntegrationResponse",
];

/// API Gateway's answer to a write that meets another one.
pub const MESSAGE: &str = "Unable to complete operation due to concurrent modification. Please try again later.";

/// The REST API a request writes to, if it is one of [`WRITES`].
pub fn written_api(ex: &Exchange) -> Option<&str> {
    (ex.service == "apigateway" && WRITES.contains(&ex.operation.as_str())).then(|| ex.str_at(&["restApiId"]))?
}

/// The writes in flight, by REST API id: when each arrived.
#[derive(Debug, Default)]
pub struct Writes {
    in_flight: HashMap<String, Instant>,
}

impl Writes {
    /// A write to an API that has one in flight is refused; otherwise it is in flight from `now`
    /// (`Some(start)`, to give back to [`Writes::end`]).
    pub fn begin(&mut self, ex: &Exchange, now: Instant) -> Result<Option<Instant>, Fault> {
        let Some(api) = written_api(ex) else { return Ok(None) };
        if self.in_flight.contains_key(api) {
            return Err(Fault { status: 409, code: "ConflictException".into(), message: MESSAGE.into() });
        }
        self.in_flight.insert(api.to_string(), now);
        Ok(Some(now))
    }

    /// When the answer to this write may leave: `hold` after it arrived.
    pub fn hold_until(&self, ex: &Exchange, hold: Duration) -> Option<Instant> {
        self.in_flight.get(written_api(ex)?).map(|started| *started + hold)
    }

    /// The write that began at `started` is answered: its API takes writes again.
    pub fn end(&mut self, api: &str, started: Instant) {
        if self.in_flight.get(api) == Some(&started) {
            self.in_flight.remove(api);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "apigateway".into(), operation: operation.into(), input }
    }

    #[test]
    fn one_write_per_api_at_a_time() {
        let t0 = Instant::now();
        let mut w = Writes::default();
        let put = ex("PutMethod", json!({"restApiId": "a1", "resourceId": "r0", "httpMethod": "ANY"}));
        let create = ex("CreateResource", json!({"restApiId": "a1", "parentId": "r0", "pathPart": "{proxy+}"}));
        let started = w.begin(&put, t0).unwrap().unwrap();
        let f = w.begin(&create, t0).unwrap_err();
        assert_eq!((f.status, f.code.as_str(), f.message.as_str()), (409, "ConflictException", MESSAGE));
        // Another API, and calls that are no writes to the resource tree, are not held up.
        let other = ex("PutIntegration", json!({"restApiId": "b2", "resourceId": "r0", "httpMethod": "ANY"}));
        assert!(w.begin(&other, t0).unwrap().is_some());
        assert!(w.begin(&ex("GetResources", json!({"restApiId": "a1"})), t0).unwrap().is_none());
        assert!(w.begin(&ex("CreateDeployment", json!({"restApiId": "a1"})), t0).unwrap().is_none());
        assert_eq!(w.hold_until(&put, Duration::from_millis(50)), Some(t0 + Duration::from_millis(50)));
        // Only the write that began it frees the API.
        w.end("a1", t0 + Duration::from_millis(1));
        assert!(w.begin(&create, t0).is_err());
        w.end("a1", started);
        assert!(w.begin(&create, t0).unwrap().is_some());
    }
}
