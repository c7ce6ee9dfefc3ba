//! Issue 10, the WAF web ACL on the stage (`[waf]`), on one stack and one moto, through the
//! strict model (which makes a new web ACL unavailable to AssociateWebACL for a moment, and
//! refuses DeleteWebACL while the ACL is associated: `strict/waf.rs`):
//!
//! 1. The base config (`[waf]` off): `up` creates no wafv2 resource and makes no wafv2 mutating
//!    call; `status` shows both WAF rows `off`.
//! 2. `enabled = true`: `plan` shows the two creates; `up` creates the ACL and associates it with
//!    the stage, crossing the "not yet associable" window by retrying; read back through the SDK
//!    (rule, limit, window, key, action, visibility, tags, the stage's association); a second
//!    `up` makes no mutating call.
//! 3. Drift behind our back (the rule's limit, through moto): `status` and `plan` name it, `up`
//!    fixes it with exactly one UpdateWebACL; then a drift fixed through a WAFOptimisticLock
//!    (an injected conflict): the lock token is read again and the update retried.
//! 4. `enabled = false` again: `plan` shows two deletes, `up` disassociates, then deletes; the
//!    next `up` makes no mutating call.
//! 5. On again, then `down`: disassociated before deleted, nothing left.
//!
//! And a stage another team put on its own web ACL, which the deployer may not read
//! (GetWebACLForResource "uses GetWebACL, to verify that your account has permission to access
//! the retrieved web ACL": `Behaviour::WafUnreadableAcl`): `up` with `[waf]` on fails at the
//! association, in one line naming that ACL and the permission it takes, and leaves the stage
//! alone; off, the stack converges around it.

use aws_sdk_wafv2::error::ProvideErrorMetadata as _;
use aws_sdk_wafv2::types::{
    AllowAction, BlockAction, DefaultAction, RateBasedStatement, RateBasedStatementAggregateKeyType, Rule, Scope,
    Statement, VisibilityConfig, WebAcl,
};
use e2e::inventory::{Inventory, Kind, Shape, TAG_RESOURCE, TAG_STACK, stage_arn};
use e2e::proxy::Rule as FaultRule;
use e2e::{Account, Aws, Behaviour, Checks, Deployer, Proxy, StackNames, write_config};
use serde_json::Value;

/// The row of resource `id` in `status` / `plan` JSON.
fn row<'a>(json: &'a Value, id: &str) -> Option<&'a Value> {
    json["resources"].as_array()?.iter().find(|r| r["id"] == id)
}

/// `"service Operation"` of the mutating calls, in order.
fn mutating(proxy: &Proxy) -> Vec<String> {
    proxy.mutating_calls().iter().map(|c| c.name()).collect()
}

fn wafv2_mutating(proxy: &Proxy) -> Vec<String> {
    proxy.mutating_calls().iter().filter(|c| c.service == "wafv2").map(|c| c.name()).collect()
}

/// The stack's web ACL and its lock token, read straight from moto.
async fn read_acl(aws: &Aws, shape: &Shape) -> Option<(WebAcl, String)> {
    let name = shape.name_of("web-acl");
    let list = aws.wafv2.list_web_acls().scope(Scope::Regional).send().await.expect("ListWebACLs");
    let summary = list.web_acls().iter().find(|s| s.name() == Some(name))?.clone();
    let got = aws
        .wafv2
        .get_web_acl()
        .name(name)
        .scope(Scope::Regional)
        .id(summary.id().unwrap_or_default())
        .send()
        .await
        .expect("GetWebACL");
    Some((got.web_acl().cloned().expect("a web ACL"), got.lock_token().unwrap_or_default().to_string()))
}

/// The stage ARN of the stack's API (found by its tag in the inventory).
fn our_stage_arn(inv: &Inventory, names: &StackNames) -> String {
    let api = inv.find(&names.stack, "api").expect("the stack's REST API");
    stage_arn(&api.id, "prod")
}

/// The name of the web ACL associated with `stage`, read straight from moto.
async fn associated_acl(aws: &Aws, stage: &str) -> Option<String> {
    let out = aws.wafv2.get_web_acl_for_resource().resource_arn(stage).send().await.expect("GetWebACLForResource");
    out.web_acl().map(|a| a.name().to_string())
}

/// Everything the config asks of the ACL, read back: one check each.
async fn check_acl(c: &mut Checks, aws: &Aws, shape: &Shape, label: &str) {
    let Some((acl, _)) = read_acl(aws, shape).await else {
        c.check(false, format!("{label}: the web ACL exists"));
        return;
    };
    let name = shape.name_of("web-acl");
    c.check(acl.default_action().is_some_and(|d| d.allow().is_some()), format!("{label}: default action allow"));
    let v = acl.visibility_config();
    c.eq(&format!("{label}: ACL sampled requests"), v.map(|v| v.sampled_requests_enabled()), Some(true));
    c.eq(&format!("{label}: ACL CloudWatch metrics"), v.map(|v| v.cloud_watch_metrics_enabled()), Some(true));
    c.eq(&format!("{label}: ACL metric name"), v.map(|v| v.metric_name()), Some(name));
    let rules: Vec<&str> = acl.rules().iter().map(|r| r.name()).collect();
    c.eq(&format!("{label}: rules"), rules, vec!["rate-limit-per-ip"]);
    let Some(rule) = acl.rules().first() else { return };
    c.check(rule.action().is_some_and(|a| a.block().is_some()), format!("{label}: the rule blocks"));
    let rate = rule.statement().and_then(|s| s.rate_based_statement());
    c.eq(&format!("{label}: rate limit"), rate.map(|r| r.limit()), Some(2000));
    c.eq(&format!("{label}: evaluation window"), rate.map(|r| r.evaluation_window_sec()), Some(300));
    c.eq(
        &format!("{label}: aggregate key"),
        rate.map(|r| r.aggregate_key_type().clone()),
        Some(RateBasedStatementAggregateKeyType::Ip),
    );
    let v = rule.visibility_config();
    c.eq(&format!("{label}: rule sampled requests"), v.map(|v| v.sampled_requests_enabled()), Some(true));
    c.eq(&format!("{label}: rule CloudWatch metrics"), v.map(|v| v.cloud_watch_metrics_enabled()), Some(true));
    let mut tags = aws.waf_tags(acl.arn()).await;
    tags.sort();
    c.eq(
        &format!("{label}: tags"),
        tags,
        vec![(TAG_RESOURCE.to_string(), "web-acl".to_string()), (TAG_STACK.to_string(), shape.names.stack.clone())],
    );
}

/// UpdateWebACL straight against moto: the rule with another limit and the default action.
async fn change_behind_our_back(aws: &Aws, shape: &Shape, limit: i64, default_action: DefaultAction) {
    let (acl, token) = read_acl(aws, shape).await.expect("the web ACL exists");
    let rule = &acl.rules()[0];
    let statement = Statement::builder()
        .rate_based_statement(
            RateBasedStatement::builder()
                .limit(limit)
                .evaluation_window_sec(300)
                .aggregate_key_type(RateBasedStatementAggregateKeyType::Ip)
                .build()
                .expect("statement"),
        )
        .build();
    let rule = Rule::builder()
        .name(rule.name())
        .priority(rule.priority())
        .statement(statement)
        .set_action(rule.action().cloned())
        .set_visibility_config(rule.visibility_config().cloned())
        .build()
        .expect("rule");
    aws.wafv2
        .update_web_acl()
        .name(acl.name())
        .scope(Scope::Regional)
        .id(acl.id())
        .lock_token(token)
        .default_action(default_action)
        .rules(rule)
        .set_visibility_config(acl.visibility_config().cloned())
        .send()
        .await
        .expect("UpdateWebACL behind the deployer's back");
}

/// `status --output json`, its exit code and the states of the two WAF rows.
async fn waf_status(deployer: &Deployer) -> (i32, Value, [String; 2]) {
    let st = deployer.run(&["--output", "json", "status"]).await;
    let json: Value = serde_json::from_str(st.stdout.trim()).unwrap_or(Value::Null);
    let state = |id: &str| row(&json, id).and_then(|r| r["state"].as_str()).unwrap_or("?").to_string();
    let states = [state("web-acl"), state("web-acl-association")];
    (st.code, json, states)
}

/// `plan --output json`: exit code and the actions of the two WAF rows.
async fn waf_plan(deployer: &Deployer, art: &str) -> (i32, Value, [String; 2]) {
    let pl = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
    let json: Value = serde_json::from_str(pl.stdout.trim()).unwrap_or(Value::Null);
    let action = |id: &str| row(&json, id).and_then(|r| r["action"].as_str()).unwrap_or("?").to_string();
    let actions = [action("web-acl"), action("web-acl-association")];
    (pl.code, json, actions)
}

fn strings<const N: usize>(a: [&str; N]) -> [String; N] {
    a.map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_acl_is_created_associated_fixed_turned_off_and_removed() {
    let account = Account::start().await;
    let stack = account.stack("waf");
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let set_waf = |enabled: &str| write_config(account.dir.path(), n, &[("waf.enabled", enabled)]);
    let mut c = Checks::new();
    let started = std::time::Instant::now();

    // ------------------------------------------------------------------ 1. off by default
    let (cold, json) = deployer.up_json(&["--artifact", art]).await;
    println!("cold up, [waf] off: {:.1}s", cold.elapsed.as_secs_f64());
    c.eq("off: wafv2 mutating calls", wafv2_mutating(proxy), Vec::<String>::new());
    c.eq("off: up's web-acl outcome", json["resources"]["web-acl"].as_str(), Some("no changes"));
    let inv = Inventory::scan(aws).await;
    c.eq("off: web ACLs on the server", inv.items.iter().filter(|i| i.kind == Kind::WebAcl).count(), 0);
    let shape = Shape::of(&stack).await;
    inv.check_converged(&mut c, &shape, "off");
    let stage = our_stage_arn(&inv, n);
    let (code, json, states) = waf_status(deployer).await;
    c.eq("off: status exit code", code, 0);
    c.eq("off: status in_sync", json["in_sync"].as_bool(), Some(true));
    c.eq("off: status of the WAF rows", states, strings(["off", "off"]));

    // ------------------------------------------------------------------ 2. on: created, associated
    set_waf("true");
    proxy.reset();
    let (code, json, actions) = waf_plan(deployer, art).await;
    c.eq("on: plan exit code", code, 2);
    c.eq("on: plan's WAF actions", actions, strings(["create", "create"]));
    c.eq("on: plan creates exactly those", json["summary"]["create"].as_u64(), Some(2));
    c.eq("on: plan's mutating calls", mutating(proxy), Vec::<String>::new());

    proxy.reset();
    let unavailable_before = proxy.model_hits()[&Behaviour::WafUnavailable];
    let (up, json) = deployer.up_json(&["--artifact", art]).await;
    println!("up, [waf] on: {:.1}s", up.elapsed.as_secs_f64());
    c.eq("on: up's web-acl outcome", json["resources"]["web-acl"].as_str(), Some("created"));
    c.eq("on: up's association outcome", json["resources"]["web-acl-association"].as_str(), Some("created"));
    c.eq("on: up's changes", json["changes"].as_u64(), Some(2));
    let associates: Vec<_> = proxy.calls().into_iter().filter(|c| c.name() == "wafv2 AssociateWebACL").collect();
    println!("  AssociateWebACL: {associates:?}");
    c.check(
        associates.len() >= 2 && associates[0].model == Some(Behaviour::WafUnavailable),
        format!("the first AssociateWebACL met the new ACL's unavailable window: {associates:?}"),
    );
    c.eq("on: the last AssociateWebACL succeeded", associates.last().and_then(|a| a.status), Some(200));
    c.check(
        proxy.model_hits()[&Behaviour::WafUnavailable] > unavailable_before,
        "the strict model's waf-unavailable behaviour acted",
    );
    c.check(
        up.stderr.contains("the new web ACL to be associable"),
        format!("up says what it waits for:\n{}", up.stderr),
    );
    let mut creates: Vec<String> = mutating(proxy).into_iter().filter(|m| m != "wafv2 AssociateWebACL").collect();
    creates.sort();
    c.eq("on: up's other mutating calls", creates, vec!["wafv2 CreateWebACL".to_string()]);
    check_acl(&mut c, aws, &shape, "on").await;
    c.eq("on: the stage's web ACL", associated_acl(aws, &stage).await, Some(shape.name_of("web-acl").to_string()));
    let acl_arn = read_acl(aws, &shape).await.map(|(a, _)| a.arn().to_string());
    c.eq("on: outputs.WebAclArn", json["outputs"]["WebAclArn"].as_str().map(str::to_string), acl_arn);
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&stack).await, "on");

    proxy.reset();
    let again = deployer.run(&["up", "--artifact", art]).await;
    c.eq("on: second up exit code", again.code, 0);
    c.eq("on: second up's mutating calls", mutating(proxy), Vec::<String>::new());
    let (code, json, states) = waf_status(deployer).await;
    c.eq("on: status exit code", code, 0);
    c.eq("on: status of the WAF rows", states, strings(["present", "present"]));
    c.eq("on: status health of the ACL", json["health"]["web-acl"]["rate_limit"].as_str(), Some("2000/5min/IP"));

    // ------------------------------------------------------------------ 3. drift
    change_behind_our_back(aws, &shape, 100, DefaultAction::builder().allow(AllowAction::builder().build()).build())
        .await;
    proxy.reset();
    let (code, json, states) = waf_status(deployer).await;
    c.eq("drift: status exit code", code, 2);
    c.eq("drift: status of the WAF rows", states, strings(["drifted", "present"]));
    let drift: Vec<(String, String, String)> = row(&json, "web-acl")
        .and_then(|r| r["drift"].as_array())
        .map(|a| {
            a.iter()
                .map(|d| {
                    let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                    (s("field"), s("live"), s("desired"))
                })
                .collect()
        })
        .unwrap_or_default();
    c.eq("drift: status names the limit", drift, vec![("rate_limit_per_5min".into(), "100".into(), "2000".into())]);
    let human = deployer.run(&["status"]).await;
    c.check(
        human.stdout.lines().any(|l| l.split_whitespace().take(2).eq(["drifted", "web-acl"]))
            && human.stdout.contains("rate_limit_per_5min: live 100, desired 2000"),
        format!("drift: status (human) shows it:\n{human}"),
    );
    let (code, json, actions) = waf_plan(deployer, art).await;
    c.eq("drift: plan exit code", code, 2);
    c.eq("drift: plan's WAF actions", actions, strings(["update", "none"]));
    c.eq("drift: plan updates exactly that", json["summary"]["update"].as_u64(), Some(1));
    c.eq("drift: status + plan mutating calls", mutating(proxy), Vec::<String>::new());
    proxy.reset();
    let (_, json) = deployer.up_json(&["--artifact", art]).await;
    c.eq("drift: up's mutating calls", mutating(proxy), vec!["wafv2 UpdateWebACL".to_string()]);
    c.check(
        json["resources"]["web-acl"].as_str().is_some_and(|s| s.starts_with("updated: rate_limit_per_5min")),
        format!("drift: up says the ACL was updated: {}", json["resources"]["web-acl"]),
    );
    check_acl(&mut c, aws, &shape, "drift fixed").await;
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", art]).await;
    c.eq("drift: the next up's exit code", again.code, 0);
    c.eq("drift: the next up's mutating calls", mutating(proxy), Vec::<String>::new());

    // The ACL changes between our read and our update: WAFOptimisticLockException (injected once
    // on our UpdateWebACL), then the token read again and the update retried.
    change_behind_our_back(aws, &shape, 2000, DefaultAction::builder().block(BlockAction::builder().build()).build())
        .await;
    proxy.add_rule(FaultRule::new().service("wafv2").operation("UpdateWebACL").times(1).fail(
        400,
        "WAFOptimisticLockException",
        "AWS WAF couldn’t save your changes because someone changed the resource after you started to edit it. \
         Reapply your changes.",
    ));
    proxy.reset();
    let (_, json) = deployer.up_json(&["--artifact", art]).await;
    proxy.clear_rules();
    // (The sweep may read the ACL twice: a run right after another one looks again once it holds
    // the lock.)
    let waf_calls: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|c| c.service == "wafv2" && matches!(c.operation.as_str(), "UpdateWebACL" | "GetWebACL"))
        .map(|c| format!("{} {:?}", c.operation, c.status))
        .skip_while(|c| c.starts_with("GetWebACL"))
        .collect();
    c.eq(
        "lock: the conflicting update, a fresh token, the update",
        waf_calls,
        ["UpdateWebACL Some(400)", "GetWebACL Some(200)", "UpdateWebACL Some(200)"].map(str::to_string).to_vec(),
    );
    c.check(
        json["resources"]["web-acl"].as_str().is_some_and(|s| s.starts_with("updated: default_action")),
        format!("lock: up says the ACL was updated: {}", json["resources"]["web-acl"]),
    );
    check_acl(&mut c, aws, &shape, "lock conflict fixed").await;

    // ------------------------------------------------------------------ 4. off again: removed
    set_waf("false");
    proxy.reset();
    let (code, _, actions) = waf_plan(deployer, art).await;
    c.eq("off again: plan exit code", code, 2);
    c.eq("off again: plan's WAF actions", actions, strings(["delete", "delete"]));
    let (code, _, states) = waf_status(deployer).await;
    c.eq("off again: status exit code (present but unwanted)", code, 2);
    c.eq("off again: status of the WAF rows", states, strings(["unwanted", "unwanted"]));
    c.eq("off again: plan + status mutating calls", mutating(proxy), Vec::<String>::new());
    proxy.reset();
    let (_, json) = deployer.up_json(&["--artifact", art]).await;
    c.eq(
        "off again: up's mutating calls, association first",
        mutating(proxy),
        ["wafv2 DisassociateWebACL", "wafv2 DeleteWebACL"].map(str::to_string).to_vec(),
    );
    c.eq("off again: up's changes", json["changes"].as_u64(), Some(2));
    c.eq("off again: the ACL is gone", read_acl(aws, &shape).await.map(|(a, _)| a.name().to_string()), None);
    c.eq("off again: the stage's web ACL", associated_acl(aws, &stage).await, None);
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&stack).await, "off again");
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", art]).await;
    c.eq("off again: the next up's exit code", again.code, 0);
    c.eq("off again: the next up's mutating calls", mutating(proxy), Vec::<String>::new());
    let (code, _, states) = waf_status(deployer).await;
    c.eq("off again: status exit code", code, 0);
    c.eq("off again: status of the WAF rows", states, strings(["off", "off"]));

    // ------------------------------------------------------------------ 5. on, then down
    set_waf("true");
    deployer.up_json(&["--artifact", art]).await;
    c.eq(
        "on again: the stage's web ACL",
        associated_acl(aws, &stage).await,
        Some(shape.name_of("web-acl").to_string()),
    );
    // The model refuses to delete an associated ACL, as AWS does (moto would delete it).
    let (acl, token) = read_acl(aws, &shape).await.expect("the web ACL exists");
    let through_proxy = Aws::new(proxy.url()).await;
    let refused = through_proxy
        .wafv2
        .delete_web_acl()
        .name(acl.name())
        .scope(Scope::Regional)
        .id(acl.id())
        .lock_token(token)
        .send()
        .await;
    let code = refused.err().and_then(|e| e.into_service_error().code().map(str::to_string));
    c.eq("DeleteWebACL of an associated ACL", code.as_deref(), Some("WAFAssociatedItemException"));
    proxy.reset();
    let down = deployer.run(&["down", "--yes"]).await;
    c.eq("down: exit code", down.code, 0);
    let waf_calls = wafv2_mutating(proxy);
    c.eq(
        "down: disassociated, then deleted",
        waf_calls,
        ["wafv2 DisassociateWebACL", "wafv2 DeleteWebACL"].map(str::to_string).to_vec(),
    );
    let inv = Inventory::scan(aws).await;
    inv.check_gone(&mut c, n, "after down");
    c.eq("after down: web ACLs on the server", inv.items.iter().filter(|i| i.kind == Kind::WebAcl).count(), 0);

    println!("waf: {:.1}s in all", started.elapsed().as_secs_f64());
    c.finish("waf (off, on, drift, lock, off again, down)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_on_another_teams_web_acl_is_named_with_the_permission_it_takes() {
    const THEIRS: &str = "edge-team-acl";
    let account = Account::start().await;
    let proxy = Proxy::builder(account.moto.url()).waf_unreadable_acl(THEIRS).start();
    let stack = account.stack("foreign-acl");
    let (aws, n, art) = (&account.aws, &stack.names, stack.artifact.as_str());
    let deployer = stack.via(&proxy);
    let mut c = Checks::new();

    let cold = deployer.run(&["up", "--artifact", art]).await;
    c.eq("[waf] off: cold up exit code", cold.code, 0);
    let stage = our_stage_arn(&Inventory::scan(aws).await, n);

    // Another team puts its own web ACL on the stage, through AWS (the proxy: the model sees it).
    let team = Aws::new(proxy.url()).await;
    let visibility = VisibilityConfig::builder()
        .sampled_requests_enabled(false)
        .cloud_watch_metrics_enabled(false)
        .metric_name(THEIRS)
        .build()
        .expect("a visibility config");
    let created = team
        .wafv2
        .create_web_acl()
        .name(THEIRS)
        .scope(Scope::Regional)
        .default_action(DefaultAction::builder().allow(AllowAction::builder().build()).build())
        .visibility_config(visibility)
        .send()
        .await
        .expect("CreateWebACL of the other team");
    let theirs = created.summary().and_then(|s| s.arn()).expect("the new ACL's ARN").to_string();
    // A new web ACL is not associable at once (`Behaviour::WafUnavailable`).
    tokio::time::sleep(e2e::strict::Timings::fast().waf_unavailable).await;
    team.wafv2
        .associate_web_acl()
        .web_acl_arn(&theirs)
        .resource_arn(&stage)
        .send()
        .await
        .expect("AssociateWebACL of the other team");

    // [waf] on: the association cannot be read. One line says which ACL and what it takes; the
    // stage is left alone (our own ACL, which needs no stage, is made meanwhile).
    write_config(account.dir.path(), n, &[("waf.enabled", "true")]);
    proxy.reset();
    let refused_before = proxy.model_hits()[&Behaviour::WafUnreadableAcl];
    let up = deployer.run(&["up", "--artifact", art]).await;
    c.eq("on: exit code (a failed resource)", up.code, 1);
    let errors: Vec<&str> =
        up.stderr.lines().filter(|l| l.starts_with("error:") && l.contains("wafv2:GetWebACL")).collect();
    c.eq("on: one error line about it", errors.len(), 1);
    let line = errors.first().copied().unwrap_or_default();
    println!("on: {line}");
    for needle in [
        theirs.as_str(),
        stage.as_str(),
        "did not make",
        "needs wafv2:GetWebACL on that web ACL",
        "AccessDeniedException",
    ] {
        c.check(line.contains(needle), format!("on: the error says {needle:?}: {line}\n{up}"));
    }
    let associations: Vec<String> = mutating(&proxy).into_iter().filter(|m| m.contains("Associate")).collect();
    c.eq("on: the stage's association untouched", associations, Vec::<String>::new());
    c.check(
        proxy.model_hits()[&Behaviour::WafUnreadableAcl] > refused_before,
        format!("the model refused to read their ACL: {:?}", proxy.model_hits()),
    );
    c.eq("on: their ACL is still on the stage", associated_acl(aws, &stage).await, Some(THEIRS.to_string()));

    // [waf] off: their association is not the stack's: up converges without touching it.
    write_config(account.dir.path(), n, &[("waf.enabled", "false")]);
    proxy.reset();
    let off = deployer.run(&["up", "--artifact", art]).await;
    c.eq("off: exit code", off.code, 0);
    // Only our own ACL, made by the failed run, goes.
    c.eq("off: wafv2 mutating calls", wafv2_mutating(&proxy), ["wafv2 DeleteWebACL"]);
    c.eq("off: their ACL is still on the stage", associated_acl(aws, &stage).await, Some(THEIRS.to_string()));

    // The other team takes its ACL back (straight to moto: the model would not let us read it).
    aws.wafv2.disassociate_web_acl().resource_arn(&stage).send().await.expect("DisassociateWebACL of theirs");
    let id = created.summary().and_then(|s| s.id()).expect("their ACL's id");
    let token = aws.wafv2.get_web_acl().name(THEIRS).scope(Scope::Regional).id(id).send().await;
    let token = token.expect("GetWebACL of theirs").lock_token().unwrap_or_default().to_string();
    let delete = aws.wafv2.delete_web_acl().name(THEIRS).scope(Scope::Regional).id(id).lock_token(token);
    delete.send().await.expect("DeleteWebACL of theirs");
    let down = deployer.run(&["down", "--yes"]).await;
    c.eq("down: exit code", down.code, 0);
    Inventory::scan(aws).await.check_gone(&mut c, n, "after down");
    c.finish("a stage on another team's web ACL");
}
