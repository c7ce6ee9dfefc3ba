//! EC2: eventual consistency of fresh security groups and subnets, zone states, and a zone where
//! the account cannot create subnets.
//!
//! EC2's API is eventually consistent: "a resource that you just created might not be visible
//! to a subsequent call" (EC2 API reference, "Eventual consistency in the Amazon EC2 API"); the
//! answer is the resource's NotFound code.
//!
//! Older accounts cannot create subnets in some zones: CreateSubnet answers 400
//! InvalidParameterValue "Value (us-east-1b) for parameter availabilityZone is invalid. Subnets can
//! currently only be created in the following availability zones: us-east-1d, us-east-1e,
//! us-east-1a, us-east-1c." (widdix/aws-cf-templates#36; hashicorp/terraform#3434, kz8s/tack#67).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Exchange;
use super::direct::{MotoEc2, xml_all, xml_first};
use crate::proxy::Fault;

/// Security groups and subnets created a moment ago.
#[derive(Debug, Default)]
pub struct Fresh {
    ids: Vec<(String, Instant)>,
}

/// Whether a request names `id` as a resource to act on. A filter value does not: a filter
/// that matches nothing yet answers an empty list, never NotFound.
fn mentions(v: &Value, id: &str) -> bool {
    match v {
        Value::String(s) => s == id,
        Value::Array(items) => items.iter().any(|i| mentions(i, id)),
        Value::Object(m) => m.iter().any(|(k, i)| k != "Filters" && mentions(i, id)),
        _ => false,
    }
}

impl Fresh {
    /// A successful CreateSecurityGroup / CreateSubnet starts the new id's window.
    pub fn record(&mut self, ex: &Exchange, response: &str, now: Instant) {
        let id = match (ex.service.as_str(), ex.operation.as_str()) {
            ("ec2", "CreateSecurityGroup") => xml_first(response, "groupId"),
            ("ec2", "CreateSubnet") => xml_first(response, "subnetId"),
            _ => None,
        };
        if let Some(id) = id {
            self.ids.push((id.to_string(), now));
        }
    }

    /// An EC2 call that names a fresh id, inside its window.
    pub fn check(&self, ex: &Exchange, now: Instant, window: Duration) -> Option<Fault> {
        if ex.service != "ec2" {
            return None;
        }
        let (id, _) =
            self.ids.iter().find(|(id, t)| now.saturating_duration_since(*t) < window && mentions(&ex.input, id))?;
        let (code, message) = if id.starts_with("sg-") {
            ("InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
        } else {
            ("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
        };
        Some(Fault { status: 400, code: code.into(), message })
    }
}

/// CreateSubnet in `refused` (a zone ID), asked by zone name or ID, as an account that cannot
/// create subnets there is answered; `zones` are the region's `(name, ID)`.
pub fn refused_subnet_zone(ex: &Exchange, zones: &[(String, String)], refused: &str) -> Option<Fault> {
    if !ex.is("ec2", "CreateSubnet") {
        return None;
    }
    let (parameter, value) = match (ex.str_at(&["AvailabilityZone"]), ex.str_at(&["AvailabilityZoneId"])) {
        (Some(name), _) => ("availabilityZone", name),
        (None, Some(id)) => ("availabilityZoneId", id),
        (None, None) => return None,
    };
    let zone_id = zones.iter().find(|(n, i)| n == value || i == value).map_or(value, |(_, i)| i.as_str());
    if zone_id != refused {
        return None;
    }
    let others: Vec<&str> = zones.iter().filter(|(_, i)| i != refused).map(|(n, _)| n.as_str()).collect();
    Some(Fault {
        status: 400,
        code: "InvalidParameterValue".into(),
        message: format!(
            "Value ({value}) for parameter {parameter} is invalid. Subnets can currently only be created in the \
             following availability zones: {}.",
            others.join(", ")
        ),
    })
}

/// [`refused_subnet_zone`] with the region's zones read from moto (only for a CreateSubnet).
pub async fn refused_subnet_zone_in(moto: &MotoEc2, ex: &Exchange, refused: &str) -> Option<Fault> {
    if !ex.is("ec2", "CreateSubnet") {
        return None;
    }
    match moto.zones().await {
        Ok(zones) => refused_subnet_zone(ex, &zones, refused),
        Err(e) => {
            eprintln!("strict model: reading the zones from moto failed: {e}");
            None
        }
    }
}

/// The `<item>...</item>` elements directly under `<availabilityZoneInfo>`, as byte ranges.
fn zone_items(xml: &str) -> Vec<(usize, usize)> {
    let Some(start) = xml.find("<availabilityZoneInfo>") else { return Vec::new() };
    let end = xml.find("</availabilityZoneInfo>").unwrap_or(xml.len());
    let mut items = Vec::new();
    let mut depth = 0;
    let mut item_start = 0;
    let mut i = start;
    while i < end {
        let rest = &xml[i..end];
        if rest.starts_with("<item>") {
            if depth == 0 {
                item_start = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if rest.starts_with("</item>") {
            depth -= 1;
            i += "</item>".len();
            if depth == 0 {
                items.push((item_start, i));
            }
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    items
}

/// DescribeAvailabilityZones as AWS would answer with `zone` in `state` (`impaired`, ...): the
/// zone's `zoneState` rewritten, and the zone left out when the request filters on a state it is
/// not in. `None` when the answer does not mention the zone.
pub fn rewrite_zones(ex: &Exchange, xml: &str, zone: &str, state: &str) -> Option<String> {
    let state_filter: Option<Vec<String>> = ex.input.get("Filters").and_then(Value::as_array).and_then(|fs| {
        fs.iter().find(|f| f.get("Name").and_then(Value::as_str) == Some("state")).map(|f| {
            f.get("Values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        })
    });
    let (from, to) = zone_items(xml).into_iter().find(|(a, b)| xml_all(&xml[*a..*b], "zoneId").contains(&zone))?;
    let item = &xml[from..to];
    let replacement = if state_filter.is_some_and(|values| !values.iter().any(|v| v == state)) {
        String::new()
    } else {
        let current = xml_first(item, "zoneState")?;
        item.replacen(&format!("<zoneState>{current}</zoneState>"), &format!("<zoneState>{state}</zoneState>"), 1)
    };
    Some(format!("{}{replacement}{}", &xml[..from], &xml[to..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "ec2".into(), operation: operation.into(), input }
    }

    #[test]
    fn fresh_ids_are_not_found_for_the_window() {
        let t0 = Instant::now();
        let w = Duration::from_millis(500);
        let mut fresh = Fresh::default();
        fresh.record(&ex("CreateSecurityGroup", json!({})), "<r><return>true</return><groupId>sg-1</groupId></r>", t0);
        fresh.record(&ex("CreateSubnet", json!({})), "<r><subnet><subnetId>subnet-1</subnetId></subnet></r>", t0);
        let auth = ex("AuthorizeSecurityGroupEgress", json!({"GroupId": "sg-1"}));
        let f = fresh.check(&auth, t0, w).unwrap();
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("InvalidGroup.NotFound", "The security group 'sg-1' does not exist")
        );
        let tags = ex("CreateTags", json!({"Resources": ["subnet-1"]}));
        assert_eq!(fresh.check(&tags, t0, w).unwrap().code, "InvalidSubnetID.NotFound");
        assert!(fresh.check(&auth, t0 + w, w).is_none());
        assert!(fresh.check(&ex("DescribeVpcs", json!({})), t0, w).is_none());
        let filtered =
            ex("DescribeRouteTables", json!({"Filters": [{"Name": "association.subnet-id", "Values": ["subnet-1"]}]}));
        assert!(fresh.check(&filtered, t0, w).is_none(), "a filter value is no lookup");
    }

    const ZONES: &str = "<DescribeAvailabilityZonesResponse><availabilityZoneInfo>\
        <item><zoneName>us-east-1a</zoneName><zoneState>available</zoneState><zoneId>use1-az6</zoneId></item>\
        <item><zoneName>us-east-1b</zoneName><zoneState>available</zoneState><zoneId>use1-az1</zoneId><messages><item>m</item></messages></item>\
        </availabilityZoneInfo></DescribeAvailabilityZonesResponse>";

    #[test]
    fn subnets_are_refused_in_one_zone_by_name_or_id() {
        let zones: Vec<(String, String)> =
            [("us-east-1a", "use1-az6"), ("us-east-1b", "use1-az1"), ("us-east-1c", "use1-az2")]
                .iter()
                .map(|(n, i)| (n.to_string(), i.to_string()))
                .collect();
        let create = |k: &str, v: &str| ex("CreateSubnet", json!({"VpcId": "vpc-1", "CidrBlock": "10.0.1.0/24", k: v}));
        let f = refused_subnet_zone(&create("AvailabilityZone", "us-east-1b"), &zones, "use1-az1").unwrap();
        assert_eq!((f.status, f.code.as_str()), (400, "InvalidParameterValue"));
        assert_eq!(
            f.message,
            "Value (us-east-1b) for parameter availabilityZone is invalid. Subnets can currently only be created in \
             the following availability zones: us-east-1a, us-east-1c."
        );
        let f = refused_subnet_zone(&create("AvailabilityZoneId", "use1-az1"), &zones, "use1-az1").unwrap();
        assert!(
            f.message.starts_with("Value (use1-az1) for parameter availabilityZoneId is invalid."),
            "{}",
            f.message
        );
        assert!(refused_subnet_zone(&create("AvailabilityZone", "us-east-1c"), &zones, "use1-az1").is_none());
        assert!(refused_subnet_zone(&ex("CreateSubnet", json!({"VpcId": "vpc-1"})), &zones, "use1-az1").is_none());
        assert!(refused_subnet_zone(&ex("CreateVpc", json!({})), &zones, "use1-az1").is_none());
    }

    #[test]
    fn a_zone_is_impaired_and_left_out_of_available_only_answers() {
        let all = rewrite_zones(&ex("DescribeAvailabilityZones", json!({})), ZONES, "use1-az1", "impaired").unwrap();
        assert_eq!(xml_all(&all, "zoneState"), ["available", "impaired"]);
        let filtered = json!({"Filters": [{"Name": "state", "Values": ["available"]}]});
        let avail = rewrite_zones(&ex("DescribeAvailabilityZones", filtered), ZONES, "use1-az1", "impaired").unwrap();
        assert_eq!(xml_all(&avail, "zoneName"), ["us-east-1a"]);
        assert!(avail.ends_with("</availabilityZoneInfo></DescribeAvailabilityZonesResponse>"));
        assert!(rewrite_zones(&ex("DescribeAvailabilityZones", json!({})), ZONES, "use1-az9", "impaired").is_none());
    }
}
