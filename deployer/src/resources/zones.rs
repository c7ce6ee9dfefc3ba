//! Which availability zones the subnets (and so the function) use. Chosen once per run, by
//! **zone ID**, and never re-derived for a subnet that exists.
//!
//! Why zone IDs: in older regions a zone *name* maps to a different physical zone in each account
//! (EC2 "AZ IDs" docs), so "the first two names" differ between accounts; the ID is the physical
//! zone. Lambda refuses subnets in some zones ("The provided subnets contain availability zone
//! Lambda doesn't support", seen for use1-az3: keboola/developer-portal#81), and a zone can leave
//! the `available` state (`information`, `impaired`, `constrained`: DescribeAvailabilityZones
//! reference). So:
//! - `network.availability_zones` in the config, by name or ID, is taken as given (and checked);
//! - otherwise an existing subnet keeps its zone, and a missing one takes the first available,
//!   Lambda-supported zone by ID that no other subnet of the stack uses.
//!
//! Older accounts cannot create subnets in some zones that DescribeAvailabilityZones lists as
//! `available`, and nothing tells them apart before CreateSubnet refuses ("Subnets can currently
//! only be created in the following availability zones: ...", widdix/aws-cf-templates#36). A
//! subnet whose zone was chosen then takes the next candidate that CreateSubnet allows
//! ([`Zones::refused`]); a zone the config names is the config's to change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::ec2::filter;
use super::{Ctx, TAG_RESOURCE};
use crate::aws::AwsResultExt;
use crate::error::{Error, Result};

/// Zone IDs whose subnets Lambda refuses. Only zones reported publicly are listed; a refusal
/// elsewhere is explained by the function (see `function.rs`) with the way out.
pub const LAMBDA_UNSUPPORTED: &[&str] = &["use1-az3"];

/// One availability zone of the account: its name here, and its physical ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub id: String,
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.id)
    }
}

fn pick(choice: &Choice, index: u8) -> Result<Zone> {
    choice
        .zones
        .get(usize::from(index))
        .cloned()
        .ok_or_else(|| Error::other(format!("internal: no zone chosen for subnet-{index}")))
}

/// The zone a subnet takes once CreateSubnet refused the ones in `refused` (IDs): the first
/// candidate not refused, allowed (zone names CreateSubnet listed; empty: not listed) and not
/// in `taken` (the other subnets' zones). Pure.
pub fn fallback(candidates: &[Zone], refused: &BTreeSet<String>, allowed: &[String], taken: &[&Zone]) -> Option<Zone> {
    candidates
        .iter()
        .find(|z| {
            !refused.contains(&z.id)
                && (allowed.is_empty() || allowed.contains(&z.name))
                && !taken.iter().any(|t| t.id == z.id)
        })
        .cloned()
}

/// A zone as DescribeAvailabilityZones reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionZone {
    pub zone: Zone,
    /// `available`, `information`, `impaired`, `unavailable`, `constrained`.
    pub state: String,
}

/// The subnets' zones, in subnet order, and how they were chosen (for the report line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub zones: Vec<Zone>,
    /// Per subnet: "config", "kept" (where the subnet is) or "chosen".
    pub how: Vec<&'static str>,
    /// The usable zones (available, Lambda-supported), in the order they are chosen: where a
    /// subnet goes when CreateSubnet refuses its zone. Empty when the config names the zones.
    pub candidates: Vec<Zone>,
}

/// Choose the zones of `count` subnets. Pure.
/// - `region_zones`: the region's standard AZs (any state);
/// - `wanted`: `network.availability_zones` (names or IDs), empty for "choose";
/// - `existing`: subnet index → the zone ID the stack's subnet is in now.
pub fn choose(
    region_zones: &[RegionZone],
    wanted: &[String],
    existing: &BTreeMap<usize, String>,
    count: usize,
    region: &str,
) -> Result<Choice> {
    let find = |want: &str| region_zones.iter().find(|z| z.zone.name == want || z.zone.id == want);
    if !wanted.is_empty() {
        let mut zones = Vec::new();
        for want in wanted {
            let z = find(want).ok_or_else(|| {
                let known: Vec<String> = region_zones.iter().map(|z| z.zone.to_string()).collect();
                Error::input(format!(
                    "network.availability_zones: {want:?} is not a zone of region {region} (this account's zones: {})",
                    known.join(", ")
                ))
            })?;
            if LAMBDA_UNSUPPORTED.contains(&z.zone.id.as_str()) {
                return Err(Error::input(format!(
                    "network.availability_zones: Lambda does not support subnets in {}; choose another zone",
                    z.zone
                )));
            }
            if z.state != "available" {
                return Err(Error::input(format!(
                    "network.availability_zones: {} is `{}`, not `available`; choose another zone",
                    z.zone, z.state
                )));
            }
            zones.push(z.zone.clone());
        }
        return Ok(Choice { how: vec!["config"; zones.len()], zones, candidates: Vec::new() });
    }
    let mut candidates: Vec<&RegionZone> = region_zones
        .iter()
        .filter(|z| z.state == "available" && !LAMBDA_UNSUPPORTED.contains(&z.zone.id.as_str()))
        .collect();
    candidates.sort_by(|a, b| a.zone.id.cmp(&b.zone.id));
    let mut used: Vec<&str> = existing.values().map(String::as_str).collect();
    let mut zones = Vec::with_capacity(count);
    let mut how = Vec::with_capacity(count);
    for i in 0..count {
        if let Some(id) = existing.get(&i) {
            // Where the subnet is, whatever that zone's state now: a subnet cannot move, and an
            // impaired zone usually recovers.
            let zone = find(id).map(|z| z.zone.clone()).unwrap_or_else(|| Zone { name: id.clone(), id: id.clone() });
            zones.push(zone);
            how.push("kept");
            continue;
        }
        let next = candidates.iter().find(|z| !used.contains(&z.zone.id.as_str())).ok_or_else(|| {
            let usable: Vec<String> = candidates.iter().map(|z| z.zone.to_string()).collect();
            Error::input(format!(
                "{count} subnets need {count} availability zones, but region {region} has only {} available that \
                 Lambda supports ({}): lower network.az_count",
                candidates.len(),
                usable.join(", ")
            ))
        })?;
        used.push(&next.zone.id);
        zones.push(next.zone.clone());
        how.push("chosen");
    }
    Ok(Choice { zones, how, candidates: candidates.iter().map(|z| z.zone.clone()).collect() })
}

/// The stack's zone choice, made once per sweep (a shared read of the run) for its subnets.
#[derive(Debug, Default)]
pub struct Zones {
    pub wanted: Vec<String>,
    pub count: usize,
    /// What CreateSubnet refused in this run, and where the subnets went instead.
    moved: Mutex<Moved>,
}

#[derive(Debug, Default)]
struct Moved {
    /// Zone IDs CreateSubnet refused.
    refused: BTreeSet<String>,
    /// Subnet index → the zone it takes instead of the chosen one.
    to: BTreeMap<u8, Zone>,
}

impl Moved {
    fn zone(&self, choice: &Choice, index: u8) -> Result<Zone> {
        match self.to.get(&index) {
            Some(z) => Ok(z.clone()),
            None => pick(choice, index),
        }
    }
}

const CHOICE: &str = "zones: the stack's choice";

impl Zones {
    pub fn new(wanted: Vec<String>, count: usize) -> Zones {
        Zones { wanted, count, moved: Mutex::new(Moved::default()) }
    }

    /// The zone of subnet `index`: two reads the first time (the region's zones, the stack's
    /// subnets, both in the discovery sweep), none after.
    pub async fn of(&self, ctx: &Ctx, index: u8) -> Result<Zone> {
        let choice = ctx.once(CHOICE, || self.decide(ctx)).await?;
        self.moved.lock().expect("zones lock").zone(&choice, index)
    }

    /// The zone of subnet `index`, once [`Zones::of`] has chosen (every subnet's `observe` does).
    pub fn chosen(&self, ctx: &Ctx, index: u8) -> Result<Zone> {
        self.moved.lock().expect("zones lock").zone(&*ctx.already::<Choice>(CHOICE)?, index)
    }

    /// CreateSubnet refused subnet `index` in `zone`, allowing only the zones named in `allowed`
    /// (empty: it did not say): the zone the subnet takes instead, away from the other subnets.
    /// A zone the config names is not replaced: the error says which key to change.
    pub async fn refused(&self, ctx: &Ctx, index: u8, zone: &Zone, allowed: &[String]) -> Result<Zone> {
        let choice = ctx.once(CHOICE, || self.decide(ctx)).await?;
        let mut moved = self.moved.lock().expect("zones lock");
        moved.refused.insert(zone.id.clone());
        let allowed_text = if allowed.is_empty() { "AWS did not say where".to_string() } else { allowed.join(", ") };
        if choice.how.get(usize::from(index)) == Some(&"config") {
            return Err(Error::input(format!(
                "EC2 refused subnet-{index} in {zone}, which `network.availability_zones` names: this account can \
                 create subnets only in {allowed_text}. Name other zones in `network.availability_zones` (or remove \
                 the key to let movies-stack choose)"
            )));
        }
        let others: Vec<Zone> = (0..choice.zones.len())
            .filter_map(|i| u8::try_from(i).ok())
            .filter(|i| *i != index)
            .filter_map(|i| moved.zone(&choice, i).ok())
            .collect();
        let taken: Vec<&Zone> = others.iter().collect();
        let next = fallback(&choice.candidates, &moved.refused, allowed, &taken).ok_or_else(|| {
            let refused: Vec<&str> = moved.refused.iter().map(String::as_str).collect();
            Error::input(format!(
                "EC2 refused subnet-{index} in {zone}: this account can create subnets only in {allowed_text}, and no \
                 other available zone that Lambda supports is free (refused: {}). Lower `network.az_count`, or name \
                 the zones in `network.availability_zones`",
                refused.join(", ")
            ))
        })?;
        moved.to.insert(index, next.clone());
        Ok(next)
    }

    async fn decide(&self, ctx: &Ctx) -> Result<Choice> {
        let (region_zones, existing) = tokio::try_join!(region_zones(ctx), existing_subnet_zones(ctx))?;
        let choice = choose(&region_zones, &self.wanted, &existing, self.count, &ctx.aws.region)?;
        let line: Vec<String> = choice
            .zones
            .iter()
            .zip(&choice.how)
            .enumerate()
            .map(|(i, (z, how))| format!("subnet-{i} {z} {how}"))
            .collect();
        ctx.info(format!("availability zones: {}", line.join(", ")));
        Ok(choice)
    }
}

/// The region's standard AZs (no Local Zones / Wavelength), whatever their state.
async fn region_zones(ctx: &Ctx) -> Result<Vec<RegionZone>> {
    let out = ctx
        .aws
        .ec2
        .describe_availability_zones()
        .filters(filter("zone-type", "availability-zone"))
        .send()
        .await
        .aws("EC2", "DescribeAvailabilityZones")?;
    Ok(out
        .availability_zones()
        .iter()
        .filter_map(|z| {
            Some(RegionZone {
                zone: Zone { name: z.zone_name()?.to_string(), id: z.zone_id()?.to_string() },
                state: z.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            })
        })
        .collect())
}

/// Subnet index → zone ID of the stack's existing subnets (from their `subnet-N` tags).
async fn existing_subnet_zones(ctx: &Ctx) -> Result<BTreeMap<usize, String>> {
    Ok(super::ec2::stack_subnets(ctx)
        .await?
        .iter()
        .filter_map(|s| {
            let tag = s.tags().iter().find(|t| t.key() == Some(TAG_RESOURCE))?.value()?;
            let index = tag.strip_prefix("subnet-")?.parse().ok()?;
            Some((index, s.availability_zone_id()?.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rz(name: &str, id: &str, state: &str) -> RegionZone {
        RegionZone { zone: Zone { name: name.into(), id: id.into() }, state: state.into() }
    }

    /// us-east-1 as one account sees it: names shuffled against IDs, az3 refused by Lambda,
    /// one zone impaired.
    fn region() -> Vec<RegionZone> {
        vec![
            rz("us-east-1a", "use1-az6", "available"),
            rz("us-east-1b", "use1-az3", "available"),
            rz("us-east-1c", "use1-az1", "impaired"),
            rz("us-east-1d", "use1-az2", "available"),
            rz("us-east-1e", "use1-az4", "available"),
        ]
    }

    fn ids(c: &Choice) -> Vec<&str> {
        c.zones.iter().map(|z| z.id.as_str()).collect()
    }

    #[test]
    fn chosen_by_id_skipping_lambda_refused_and_unavailable_zones() {
        let c = choose(&region(), &[], &BTreeMap::new(), 2, "us-east-1").unwrap();
        assert_eq!(ids(&c), ["use1-az2", "use1-az4"]);
        assert_eq!(c.how, ["chosen", "chosen"]);
        assert_eq!(c.zones[0].name, "us-east-1d");
        let candidates: Vec<&str> = c.candidates.iter().map(|z| z.id.as_str()).collect();
        assert_eq!(candidates, ["use1-az2", "use1-az4", "use1-az6"]);
    }

    #[test]
    fn a_refused_zone_falls_back_to_the_next_free_allowed_candidate() {
        let c = choose(&region(), &[], &BTreeMap::new(), 2, "us-east-1").unwrap();
        let refused = BTreeSet::from(["use1-az2".to_string()]);
        // subnet-0 refused in az2: az4 is subnet-1's, so az6.
        let got = fallback(&c.candidates, &refused, &[], &[&c.zones[1]]).unwrap();
        assert_eq!(got.id, "use1-az6");
        // Only the zones CreateSubnet listed.
        let allowed = ["us-east-1d".to_string(), "us-east-1e".to_string()];
        assert_eq!(fallback(&c.candidates, &refused, &allowed, &[]).map(|z| z.id), Some("use1-az4".to_string()));
        assert_eq!(fallback(&c.candidates, &refused, &allowed, &[&c.zones[1]]), None);
        // Configured zones have no candidates: nothing to fall back to.
        let pinned = choose(&region(), &["use1-az2".to_string()], &BTreeMap::new(), 1, "us-east-1").unwrap();
        assert!(pinned.candidates.is_empty());
    }

    #[test]
    fn an_existing_subnet_keeps_its_zone_and_the_others_avoid_it() {
        // subnet-1 already lives in az6; the impaired zone of an existing subnet is kept too.
        let existing = BTreeMap::from([(1, "use1-az6".to_string()), (2, "use1-az1".to_string())]);
        let c = choose(&region(), &[], &existing, 3, "us-east-1").unwrap();
        assert_eq!(ids(&c), ["use1-az2", "use1-az6", "use1-az1"]);
        assert_eq!(c.how, ["chosen", "kept", "kept"]);
    }

    #[test]
    fn configured_zones_by_name_or_id_are_checked() {
        let wanted = ["us-east-1e".to_string(), "use1-az6".to_string()];
        let c = choose(&region(), &wanted, &BTreeMap::new(), 2, "us-east-1").unwrap();
        assert_eq!(ids(&c), ["use1-az4", "use1-az6"]);
        assert_eq!(c.how, ["config", "config"]);
        let err = |w: &str| choose(&region(), &[w.to_string()], &BTreeMap::new(), 1, "us-east-1").unwrap_err();
        assert!(err("use1-az3").to_string().contains("Lambda does not support"), "{}", err("use1-az3"));
        assert!(err("us-east-1c").to_string().contains("`impaired`"), "{}", err("us-east-1c"));
        assert!(err("use1-az9").to_string().contains("not a zone of region us-east-1"), "{}", err("use1-az9"));
        assert_eq!(err("use1-az9").exit_code(), crate::error::exit::INPUT);
    }

    #[test]
    fn too_few_usable_zones_is_explained() {
        let e = choose(&region(), &[], &BTreeMap::new(), 4, "us-east-1").unwrap_err().to_string();
        assert!(e.contains("only 3 available that Lambda supports"), "{e}");
        assert!(e.contains("network.az_count"), "{e}");
    }
}
