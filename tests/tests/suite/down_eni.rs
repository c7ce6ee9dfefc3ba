//! Issue 4, `down` with lingering Lambda VPC network interfaces, as AWS has them.
//!
//! MOTO GAP, covered by the strict model (`tests/src/strict/lambda.rs`, behaviour `LambdaEnis`):
//! moto creates no Lambda ENIs and lets a security group in use be deleted. The model gives the
//! function its Hyperplane ENIs (`AWS Lambda VPC ENI-<function>-...`, `in-use`) when it is
//! created in the VPC, keeps them in use for a while after the function leaves the VPC or is
//! deleted, and meanwhile answers DeleteSecurityGroup and DeleteSubnet with `DependencyViolation`.
//!
//! `down --yes` must wait (a progress line about Lambda network interfaces), delete the released
//! ENIs itself (DeleteNetworkInterface, only after they were released), delete the group and the
//! subnets, and exit 0 with nothing of the stack left but the kept table.

use std::time::Instant;

use e2e::inventory::{Inventory, ItemKind, Kind, Shape, TAG_STACK};
use e2e::{Account, Aws, Behaviour, Checks, ec2_filter};

/// The stack's Lambda ENIs (by the function's name in their description), with their status.
async fn lambda_enis(aws: &Aws, function: &str) -> Vec<(String, String)> {
    aws.network_interfaces(vec![ec2_filter("description", &format!("AWS Lambda VPC ENI-{function}-*"))]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_waits_for_the_lingering_lambda_enis_and_deletes_them() {
    let account = Account::start().await;
    let stack = account.stack("eni");
    let (aws, proxy, n, deployer) = (&account.aws, &account.proxy, &stack.names, &stack.deployer);
    let mut c = Checks::new();
    let started = Instant::now();

    deployer.up_json(&["--artifact", &stack.artifact]).await;
    let enis = lambda_enis(aws, &n.function).await;
    println!("after up, the function's ENIs: {enis:?}");
    c.check(!enis.is_empty(), format!("the function in the VPC has Lambda ENIs: {enis:?}"));
    c.check(enis.iter().all(|(_, s)| s == "in-use"), format!("they are in use: {enis:?}"));
    let inv = Inventory::scan(aws).await;
    let sg_id = inv.find(&n.stack, "function-sg").expect("function-sg").id.clone();

    proxy.reset();
    let hits_before = proxy.model_hits().get(&Behaviour::LambdaEnis).copied().unwrap_or(0);
    let down = deployer.run(&["down", "--yes"]).await;
    let calls = proxy.calls();
    let hits = proxy.model_hits().get(&Behaviour::LambdaEnis).copied().unwrap_or(0) - hits_before;
    println!(
        "down: exit {} after {:.1}s; {} calls; the model's ENI answers: {hits}",
        down.code,
        down.elapsed.as_secs_f64(),
        calls.len()
    );
    for (i, call) in calls.iter().enumerate() {
        if call.service == "ec2" && call.mutating {
            println!("  #{i:<3} {call}");
        }
    }
    c.eq("down --yes: exit code", down.code, 0);
    c.check(hits >= 2, format!("the group and subnets were refused while the ENIs were in use: {hits} model answers"));
    let refused = |op: &str| {
        calls.iter().filter(|call| call.operation == op && call.model == Some(Behaviour::LambdaEnis)).count()
    };
    c.check(
        refused("DeleteSecurityGroup") + refused("DeleteSubnet") >= 1,
        "DeleteSecurityGroup or DeleteSubnet met DependencyViolation",
    );
    let stderr = down.stderr.to_lowercase();
    c.check(
        stderr.lines().any(|l| l.contains("waiting") && l.contains("lambda network interface")),
        format!("down's stderr has a progress line waiting for Lambda network interfaces:\n{down}"),
    );
    // The ENIs were deleted by the deployer once released, and only then the group.
    let eni_deletes: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.name() == "ec2 DeleteNetworkInterface" && call.status == Some(200))
        .map(|(i, _)| i)
        .collect();
    c.check(!eni_deletes.is_empty(), "the deployer deleted the released ENIs (DeleteNetworkInterface)");
    let sg_ok: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| call.operation == "DeleteSecurityGroup" && call.status == Some(200))
        .map(|(i, _)| i)
        .collect();
    c.eq("successful DeleteSecurityGroup calls", sg_ok.len(), 1);
    c.check(
        sg_ok.iter().all(|i| eni_deletes.first().is_some_and(|d| d < i)),
        format!("the group was deleted after an ENI: ENI deletes {eni_deletes:?}, group deletes {sg_ok:?}"),
    );
    let subnet_ok = calls.iter().filter(|call| call.operation == "DeleteSubnet" && call.status == Some(200)).count();
    c.eq("successful DeleteSubnet calls (both subnets)", subnet_ok, 2);

    c.eq("the function's ENIs left", lambda_enis(aws, &n.function).await, vec![]);
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
    let left: Vec<(ItemKind, &str)> =
        inv.leftovers(&Shape::of(&stack).await).iter().map(|i| (i.kind, i.id.as_str())).collect();
    c.eq("what is left of the stack", left, [(Kind::Table.into(), n.table.as_str())]);

    println!("down with lingering ENIs: {:.1}s in all", started.elapsed().as_secs_f64());
    c.finish("down with lingering Lambda ENIs");
}
