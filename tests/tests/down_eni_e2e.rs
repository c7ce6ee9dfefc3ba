//! Issue 4, `down` with a lingering Lambda VPC network interface.
//!
//! MOTO GAP: moto creates no Lambda ENIs and lets a security group in use be deleted, so AWS's
//! window is reproduced by hand:
//! - after `up`, an ENI is created through the SDK in subnet-0 with the function's security
//!   group and Lambda's description (`AWS Lambda VPC ENI-<function>-abc`), and attached to an
//!   EC2 instance (DeviceIndex 1) so that it is `in-use`, as Lambda's are until released;
//! - a background task detaches it ~4 s after `down` starts (Lambda releasing it);
//! - the proxy answers `DeleteSecurityGroup` with `DependencyViolation` (HTTP 400, EC2 query
//!   error) for the first ~3 s of the `down`, as EC2 does while the ENI uses the group; and
//!   `DeleteSubnet` likewise (moto would let the subnet go with the ENI still in it).
//!
//! `down --yes` must wait (a progress line about Lambda network interfaces), delete the released
//! ENI itself (DeleteNetworkInterface, only after it was released), delete the group, and exit 0
//! with nothing of the stack left but the kept table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::InstanceType;
use e2e::inventory::{Inventory, TAG_STACK};
use e2e::{Account, Aws, Checks, Rule, ec2_filter};

/// When the background task detaches the ENI, after `down` starts.
const RELEASE_AFTER: Duration = Duration::from_secs(4);
/// How long DeleteSecurityGroup answers DependencyViolation, after `down` starts.
const VIOLATION_FOR: Duration = Duration::from_secs(3);

async fn eni_status(aws: &Aws, eni_id: &str) -> Option<String> {
    let out = aws
        .ec2
        .describe_network_interfaces()
        .filters(ec2_filter("network-interface-id", eni_id))
        .send()
        .await
        .expect("DescribeNetworkInterfaces");
    out.network_interfaces().first().map(|e| e.status().map(|s| s.as_str().to_string()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_waits_for_a_lingering_lambda_eni_and_deletes_it() {
    // Shared with the task that releases the ENI.
    let account = Arc::new(Account::start().await);
    let stack = account.stack("eni");
    let (aws, proxy, n, deployer) = (&account.aws, &account.proxy, &stack.names, &stack.deployer);
    let mut c = Checks::new();
    let started = Instant::now();

    deployer.up_json(&["--artifact", &stack.artifact]).await;

    // ------------------------------------------------------------------ Lambda's ENI, by hand
    let inv = Inventory::scan(aws).await;
    let id_of = |resource: &str| inv.find(&n.stack, resource).unwrap_or_else(|| panic!("{resource}")).id.clone();
    let (subnet_id, sg_id) = (id_of("subnet-0"), id_of("function-sg"));
    let eni = aws
        .ec2
        .create_network_interface()
        .subnet_id(&subnet_id)
        .groups(&sg_id)
        .description(format!("AWS Lambda VPC ENI-{}-abc", n.function))
        .send()
        .await
        .expect("CreateNetworkInterface");
    let eni_id = eni.network_interface().and_then(|e| e.network_interface_id()).expect("ENI id").to_string();
    let images = aws.ec2.describe_images().owners("amazon").send().await.expect("DescribeImages");
    let image_id = images.images().first().and_then(|i| i.image_id()).expect("moto has an AMI").to_string();
    let run = aws
        .ec2
        .run_instances()
        .image_id(&image_id)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet_id)
        .send()
        .await
        .expect("RunInstances");
    let instance_id = run.instances().first().and_then(|i| i.instance_id()).expect("instance id").to_string();
    let attach = aws
        .ec2
        .attach_network_interface()
        .network_interface_id(&eni_id)
        .instance_id(&instance_id)
        .device_index(1)
        .send()
        .await
        .expect("AttachNetworkInterface");
    let attachment_id = attach.attachment_id().expect("attachment id").to_string();
    let status = eni_status(aws, &eni_id).await;
    assert_eq!(status.as_deref(), Some("in-use"), "the stand-in Lambda ENI {eni_id} is in use before down");
    // The deployer finds Lambda's ENIs by group and by subnet: both must see this one.
    for (name, value) in [("group-id", &sg_id), ("subnet-id", &subnet_id)] {
        let out = aws
            .ec2
            .describe_network_interfaces()
            .filters(ec2_filter(name, value))
            .filters(ec2_filter("description", "AWS Lambda VPC ENI*"))
            .send()
            .await
            .expect("DescribeNetworkInterfaces");
        let ids: Vec<&str> = out.network_interfaces().iter().filter_map(|e| e.network_interface_id()).collect();
        assert_eq!(ids, vec![eni_id.as_str()], "moto finds the ENI by {name} + description");
    }

    // ------------------------------------------------------------------ the window, then down
    proxy.reset();
    proxy.add_rule(
        Rule::new().service("ec2").operation("DeleteSecurityGroup").during(Duration::ZERO, VIOLATION_FOR).fail(
            400,
            "DependencyViolation",
            &format!("resource {sg_id} has a dependent object"),
        ),
    );
    // EC2 refuses DeleteSubnet too while the ENI is in the subnet (moto allows it): same window.
    proxy.add_rule(Rule::new().service("ec2").operation("DeleteSubnet").during(Duration::ZERO, VIOLATION_FOR).fail(
        400,
        "DependencyViolation",
        &format!("The subnet '{subnet_id}' has dependencies and cannot be deleted."),
    ));
    let down_started = Instant::now();
    let releaser = {
        let (account, attachment_id) = (account.clone(), attachment_id.clone());
        tokio::spawn(async move {
            let (aws, proxy) = (&account.aws, &account.proxy);
            // Note when the deployer first tries the group (for the report), then release.
            let mut first_sg_delete = None;
            while down_started.elapsed() < RELEASE_AFTER {
                if first_sg_delete.is_none() && proxy.calls().iter().any(|c| c.operation == "DeleteSecurityGroup") {
                    first_sg_delete = Some(down_started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let calls_before = proxy.calls().len();
            aws.ec2
                .detach_network_interface()
                .attachment_id(&attachment_id)
                .send()
                .await
                .expect("DetachNetworkInterface");
            (calls_before, down_started.elapsed(), first_sg_delete)
        })
    };
    let down = deployer.run(&["down", "--yes"]).await;
    let (calls_at_release, released_at, first_sg_delete) = releaser.await.expect("releaser task");
    let calls = proxy.calls();
    println!(
        "down: exit {} after {:.1}s; first DeleteSecurityGroup at {:?}; ENI released at {:.1}s; {} calls; rule hits {:?}",
        down.code,
        down.elapsed.as_secs_f64(),
        first_sg_delete,
        released_at.as_secs_f64(),
        calls.len(),
        proxy.rule_hits()
    );
    for (i, call) in calls.iter().enumerate() {
        if call.service == "ec2" && call.mutating {
            println!("  #{i:<3} {call}");
        }
    }

    for line in down.stderr.lines().filter(|l| l.to_lowercase().contains("network interface")) {
        println!("  stderr: {line}");
    }
    c.eq("down --yes: exit code", down.code, 0);
    c.check(
        proxy.rule_hits().first().is_some_and(|&h| h >= 1),
        format!(
            "DeleteSecurityGroup was tried inside the DependencyViolation window: rule hits {:?}",
            proxy.rule_hits()
        ),
    );
    c.check(
        proxy.rule_hits().get(1).is_some_and(|&h| h >= 1),
        format!("DeleteSubnet was tried inside the DependencyViolation window: rule hits {:?}", proxy.rule_hits()),
    );
    let subnet_ok = calls.iter().filter(|call| call.operation == "DeleteSubnet" && call.status == Some(200)).count();
    c.eq("successful DeleteSubnet calls (both subnets, after the window)", subnet_ok, 2);
    let stderr = down.stderr.to_lowercase();
    c.check(
        stderr.lines().any(|l| l.contains("waiting") && l.contains("lambda network interface")),
        format!("down's stderr has a progress line waiting for Lambda network interfaces:\n{down}"),
    );
    c.check(
        down.elapsed >= RELEASE_AFTER,
        format!("down waited for the release ({:.1}s >= {:?})", down.elapsed.as_secs_f64(), RELEASE_AFTER),
    );

    let eni_deletes: Vec<(usize, Option<u16>)> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.name() == "ec2 DeleteNetworkInterface")
        .map(|(i, call)| (i, call.status))
        .collect();
    c.check(!eni_deletes.is_empty(), "the deployer called DeleteNetworkInterface on the released ENI");
    c.check(
        eni_deletes.iter().all(|(i, _)| *i >= calls_at_release),
        format!(
            "DeleteNetworkInterface only after the ENI was released (calls #{calls_at_release}.. ): {eni_deletes:?}"
        ),
    );
    c.check(
        eni_deletes.iter().any(|(_, st)| *st == Some(200)),
        format!("a DeleteNetworkInterface succeeded: {eni_deletes:?}"),
    );
    let sg_ok: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.operation == "DeleteSecurityGroup" && call.status == Some(200) && !call.injected)
        .map(|(i, _)| i)
        .collect();
    c.eq("successful DeleteSecurityGroup calls", sg_ok.len(), 1);
    c.check(
        sg_ok.iter().all(|i| eni_deletes.first().is_some_and(|(d, _)| d < i)),
        format!("the group was deleted after its ENI: ENI deletes {eni_deletes:?}, group deletes {sg_ok:?}"),
    );
    c.check(
        down.stderr.contains(&eni_id),
        format!("down's stderr names the released ENI {eni_id} it deletes:\n{down}"),
    );

    c.eq("the stand-in Lambda ENI is gone", eni_status(aws, &eni_id).await, None);
    let sgs = aws
        .ec2
        .describe_security_groups()
        .filters(ec2_filter(&format!("tag:{TAG_STACK}"), &n.stack))
        .send()
        .await
        .expect("DescribeSecurityGroups");
    c.eq("security groups of the stack left", sgs.security_groups().len(), 0);
    let all = aws.ec2.describe_security_groups().send().await.expect("DescribeSecurityGroups");
    c.check(
        all.security_groups().iter().all(|g| g.group_id() != Some(sg_id.as_str())),
        format!("the function's group {sg_id} no longer exists"),
    );
    let inv = Inventory::scan(aws).await;
    let left: Vec<(&str, &str)> = inv.leftovers(n).iter().map(|i| (i.kind, i.id.as_str())).collect();
    c.eq("what is left of the stack", left, [("table", n.table.as_str())]);

    println!("down with a lingering ENI: {:.1}s in all", started.elapsed().as_secs_f64());
    c.finish("down with a lingering Lambda ENI");
}
