//! Issue 4, `down`: confirmation, what goes and what stays, adoption of the kept table, and
//! idempotence. Every service is checked through the SDK straight against moto
//! (`e2e::inventory`), never through the deployer's own reads.
//!
//! 1. `down` without `--yes`, stdin not a terminal: exit 3 and not one AWS call.
//! 2. `down --yes`: every resource of the stack is gone except the DynamoDB table, which keeps
//!    its items; the shared API Gateway CloudWatch role stays (and is still set in GetAccount).
//! 3. `down --yes` again: exit 0, no mutating call.
//! 4. `up` adopts the kept table (same ARN and creation time), the stack is in sync.
//! 5. `down --yes --delete-data`, with a stage the stack does not know bound to its Standard plan:
//!    the plan's deletion is refused once, the plan unbound and deleted; nothing of the stack is
//!    left, the table neither; the account role still stays. `down --yes` once more: exit 0, no
//!    mutating call.
//!
//! In 2, the plans are deleted after the stage in one call each: DeleteStage took the stage off
//! them (the strict model, as AWS), so no UpdateUsagePlan.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::inventory::{ACCOUNT_ROLE, Inventory, ItemKind, Kind, Shape};
use e2e::{Account, Aws, Checks, Proxy};
use serde_json::Value;

const ITEM_ID: &str = "e2e-kept-item";

async fn table_identity(aws: &Aws, table: &str) -> Option<(String, String)> {
    let t = aws.dynamodb.describe_table().table_name(table).send().await.ok()?;
    let t = t.table()?;
    Some((t.table_arn().unwrap_or_default().to_string(), format!("{:?}", t.creation_date_time())))
}

async fn item_title(aws: &Aws, table: &str) -> Option<String> {
    let got = aws
        .dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(ITEM_ID.into()))
        .consistent_read(true)
        .send()
        .await
        .ok()?;
    got.item()?.get("title")?.as_s().ok().cloned()
}

fn mutating(proxy: &Proxy) -> Vec<String> {
    proxy.mutating_calls().iter().map(|c| c.to_string()).collect()
}

/// The shared account-level CloudWatch role is never the stack's to delete: the IAM role exists
/// and API Gateway's account setting (GetAccount) still points at it.
fn check_account_role(c: &mut Checks, inv: &Inventory, label: &str) {
    c.check(inv.account_role().is_some(), format!("{label}: the IAM role {ACCOUNT_ROLE} exists"));
    let arn = inv.cloudwatch_role_arn.as_deref();
    c.check(
        arn.is_some_and(|a| a.ends_with(&format!(":role/{ACCOUNT_ROLE}"))),
        format!("{label}: GetAccount has the CloudWatch role: {arn:?}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_keeps_the_table_then_deletes_everything() {
    let account = Account::start().await;
    let stack = account.stack("down");
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let shape = Shape::of(&stack).await;
    let mut c = Checks::new();
    let started = std::time::Instant::now();

    deployer.up_json(&["--artifact", art]).await;
    let inv = Inventory::scan(aws).await;
    let before: Vec<String> = inv.leftovers(&shape).iter().map(|i| i.to_string()).collect();
    println!("after up, {} resources of the stack are visible through the SDK", before.len());
    // The inventory must see the stack, or "nothing left" proves nothing.
    let expected: Vec<_> = shape.wanted().collect();
    for kind in expected.iter().map(|e| e.kind).collect::<BTreeSet<_>>() {
        c.check(
            inv.leftovers(&shape).iter().any(|i| i.kind == kind),
            format!("after up, the inventory sees a {kind}: {before:?}"),
        );
    }
    c.eq("after up: resources in the inventory", before.len(), expected.len());
    check_account_role(&mut c, &inv, "after up");
    aws.dynamodb
        .put_item()
        .table_name(&n.table)
        .item("id", AttributeValue::S(ITEM_ID.into()))
        .item("title", AttributeValue::S("Kept Movie".into()))
        .item("year", AttributeValue::S("2023".into()))
        .send()
        .await
        .expect("PutItem");
    let table_before = table_identity(aws, &n.table).await;
    c.check(table_before.is_some(), "the table exists after up");

    // ------------------------------------------------------------------ 1. no --yes, no TTY
    proxy.reset();
    let refused = deployer.run(&["down"]).await;
    c.eq("down without --yes (stdin not a TTY): exit code", refused.code, 3);
    c.check(refused.stderr.contains("--yes"), format!("down without --yes says to pass --yes:\n{refused}"));
    let calls: Vec<String> = proxy.calls().iter().map(|c| c.to_string()).collect();
    c.eq("down without --yes: AWS calls", calls, Vec::<String>::new());
    c.eq("down without --yes: nothing deleted", Inventory::scan(aws).await.leftovers(&shape).len(), before.len());

    // ------------------------------------------------------------------ 2. down --yes
    proxy.reset();
    let down = deployer.run(&["--output", "json", "down", "--yes"]).await;
    println!("down --yes: exit {} in {:.1}s, {} calls", down.code, down.elapsed.as_secs_f64(), proxy.calls().len());
    c.eq("down --yes: exit code", down.code, 0);
    if down.code != 0 {
        println!("{down}");
    }
    let json: Value = serde_json::from_str(down.stdout.trim()).unwrap_or(Value::Null);
    c.eq("down --yes: table_kept", json["table_kept"].as_bool(), Some(true));
    let deleted: Vec<&str> =
        json["deleted"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    c.check(
        !deleted.contains(&"table") && !deleted.contains(&"apigw-account"),
        format!("down --yes: neither the table nor the account role in `deleted`: {deleted:?}"),
    );
    c.check(deleted.len() >= 20, format!("down --yes: lists what it deleted: {deleted:?}"));
    let proxy_deletes: Vec<String> = proxy
        .mutating_calls()
        .iter()
        .filter(|call| call.service == "dynamodb" || call.operation == "UpdateAccount")
        .map(|call| call.to_string())
        .collect();
    c.eq("down --yes: calls touching the table or the account setting", proxy_deletes, Vec::<String>::new());
    // The function goes at once, beside the API's teardown, not after it (the permission goes
    // with the function: no RemovePermission); each Lambda ENI is deleted once.
    let timeline = proxy.timeline();
    let first = |operation: &str| timeline.iter().find(|t| t.call.operation == operation).map(|t| t.arrived);
    let (detach, stage, plan, api) =
        (first("UpdateFunctionConfiguration"), first("DeleteStage"), first("DeleteUsagePlan"), first("DeleteRestApi"));
    c.check(
        detach.is_some() && api.is_some() && detach < api,
        format!("down --yes: the function's detach ({detach:?}) does not wait for the API's deletion ({api:?})"),
    );
    // DeleteStage takes the stage off the plans (the strict model does it as AWS does): the plans
    // go after it, in one call each, with no UpdateUsagePlan (1 request / 20 s) to unbind them.
    c.check(stage < plan, format!("down --yes: the plans ({plan:?}) go after the stage ({stage:?})"));
    c.eq(
        "down --yes: UpdateUsagePlan calls",
        proxy.calls().iter().filter(|call| call.operation == "UpdateUsagePlan").count(),
        0,
    );
    c.eq(
        "down --yes: RemovePermission calls (the permission goes with the function)",
        proxy.calls().iter().filter(|call| call.operation == "RemovePermission").count(),
        0,
    );
    c.check(deleted.contains(&"api-permission"), format!("down --yes: api-permission is in `deleted`: {deleted:?}"));
    // A second delete of the same ENI (by a subnet after the security group) would be answered
    // NotFound by moto; "in use" refusals come from the strict model.
    let eni_deletes: Vec<_> =
        proxy.calls().into_iter().filter(|call| call.operation == "DeleteNetworkInterface").collect();
    c.check(
        eni_deletes.iter().any(|call| call.status == Some(200)),
        format!("down --yes: the released Lambda ENIs were deleted: {eni_deletes:?}"),
    );
    let refused_by_moto: Vec<String> = eni_deletes
        .iter()
        .filter(|call| call.status != Some(200) && call.model.is_none())
        .map(|call| call.to_string())
        .collect();
    c.eq("down --yes: DeleteNetworkInterface of an ENI already deleted", refused_by_moto, Vec::<String>::new());

    let inv = Inventory::scan(aws).await;
    let left: Vec<(ItemKind, &str)> = inv.leftovers(&shape).iter().map(|i| (i.kind, i.id.as_str())).collect();
    c.eq("down --yes: what is left of the stack", left, [(Kind::Table.into(), n.table.as_str())]);
    check_account_role(&mut c, &inv, "down --yes");
    c.eq("down --yes: the table's item is kept", item_title(aws, &n.table).await.as_deref(), Some("Kept Movie"));
    c.eq("down --yes: the table is the same", table_identity(aws, &n.table).await, table_before.clone());

    // ------------------------------------------------------------------ 3. down again
    proxy.reset();
    let again = deployer.run(&["down", "--yes"]).await;
    c.eq("second down --yes: exit code", again.code, 0);
    c.eq("second down --yes: mutating calls", mutating(proxy), Vec::<String>::new());
    c.eq("second down --yes: the item is still there", item_title(aws, &n.table).await.as_deref(), Some("Kept Movie"));

    // ------------------------------------------------------------------ 4. up adopts the table
    proxy.reset();
    let up = deployer.run(&["--output", "json", "up", "--artifact", art]).await;
    c.eq("up after down: exit code", up.code, 0);
    if up.code == 0 {
        let json = up.json();
        c.eq("up after down: table outcome", json["resources"]["table"].as_str(), Some("no changes"));
        c.eq("up after down: outputs.TableName", json["outputs"]["TableName"].as_str(), Some(n.table.as_str()));
    } else {
        println!("{up}");
    }
    let table_calls: Vec<String> =
        proxy.mutating_calls().iter().filter(|call| call.service == "dynamodb").map(|call| call.to_string()).collect();
    c.eq("up after down: mutating DynamoDB calls", table_calls, Vec::<String>::new());
    c.eq(
        "up after down: the table was not recreated (ARN, creation time)",
        table_identity(aws, &n.table).await,
        table_before.clone(),
    );
    c.eq("up after down: the item is still there", item_title(aws, &n.table).await.as_deref(), Some("Kept Movie"));
    c.eq("up after down: inventory", Inventory::scan(aws).await.leftovers(&shape).len(), before.len());
    let st = deployer.run(&["status"]).await;
    c.eq("status after the second up: exit code", st.code, 0);

    // ------------------------------------------------------------------ 5. down --delete-data
    // A stage the stack does not know, bound to its Standard plan (someone's test stage on the
    // same API): DeleteStage of ours leaves that binding, AWS refuses to delete the plan, and
    // `down` unbinds it first.
    let apis = aws.apigateway.get_rest_apis().send().await.expect("GetRestApis");
    let api = apis.items().iter().find(|a| a.name() == Some(shape.name_of("api"))).and_then(|a| a.id()).unwrap();
    let prod = aws.apigateway.get_stage().rest_api_id(api).stage_name("prod").send().await.expect("GetStage prod");
    let deployment = prod.deployment_id().unwrap_or_default();
    aws.apigateway.create_stage().rest_api_id(api).stage_name("other").deployment_id(deployment).send().await.unwrap();
    let plans = aws.apigateway.get_usage_plans().send().await.expect("GetUsagePlans");
    let standard = plans.items().iter().find(|p| p.name() == Some(shape.name_of("usage-plan-standard"))).unwrap();
    let bind = aws_sdk_apigateway::types::PatchOperation::builder()
        .op(aws_sdk_apigateway::types::Op::Add)
        .path("/apiStages")
        .value(format!("{api}:other"))
        .build();
    aws.apigateway
        .update_usage_plan()
        .usage_plan_id(standard.id().unwrap())
        .patch_operations(bind)
        .send()
        .await
        .unwrap();
    proxy.reset();
    let purge = deployer.run(&["--output", "json", "down", "--yes", "--delete-data"]).await;
    c.eq("down --yes --delete-data: exit code", purge.code, 0);
    if purge.code != 0 {
        println!("{purge}");
    }
    let json: Value = serde_json::from_str(purge.stdout.trim()).unwrap_or(Value::Null);
    c.eq("down --delete-data: table_kept", json["table_kept"].as_bool(), Some(false));
    c.check(
        json["deleted"].as_array().is_some_and(|a| a.iter().any(|v| v == "table")),
        format!("down --delete-data lists the table as deleted: {json}"),
    );
    let refused: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|call| call.operation == "DeleteUsagePlan" && call.status == Some(400))
        .map(|call| call.to_string())
        .collect();
    c.eq("down --delete-data: DeleteUsagePlan refused (the foreign stage)", refused.len(), 1);
    c.eq(
        "down --delete-data: UpdateUsagePlan calls (the foreign stage off the Standard plan)",
        proxy.calls().iter().filter(|call| call.operation == "UpdateUsagePlan" && call.status == Some(200)).count(),
        1,
    );
    let inv = Inventory::scan(aws).await;
    let left: Vec<String> = inv.leftovers(&shape).iter().map(|i| i.to_string()).collect();
    c.eq("down --delete-data: what is left of the stack", left, Vec::<String>::new());
    check_account_role(&mut c, &inv, "down --delete-data");
    c.eq(
        "down --delete-data: no UpdateAccount",
        proxy.mutating_calls().iter().filter(|call| call.operation == "UpdateAccount").count(),
        0,
    );

    proxy.reset();
    let last = deployer.run(&["down", "--yes", "--delete-data"]).await;
    c.eq("down --yes --delete-data again: exit code", last.code, 0);
    c.eq("down --yes --delete-data again: mutating calls", mutating(proxy), Vec::<String>::new());

    println!("down: {:.1}s in all", started.elapsed().as_secs_f64());
    c.finish("down");
}
