//! `up`'s CloudTrail preflight (deployer `commands/preflight.rs`) against the account's trails.
//!
//! One stack, one moto; the trail is made through the SDK straight against moto, as the account's
//! owner would. `--require-cloudtrail` turns the warning into a refusal before any change:
//!   1. no trail: refused, having asked only DescribeTrails;
//!   2. a trail that is not logging: refused, having asked its status (GetTrailStatus) and not its
//!      selectors;
//!   3. the trail logging (StartLogging; no event selectors, which logs management events): the
//!      cold `up` goes through with no CloudTrail warning, having asked DescribeTrails,
//!      GetTrailStatus and GetEventSelectors;
//!   4. the trail logging S3 data events only (a basic selector without management events): a
//!      plain `up` warns and changes nothing;
//!   5. an advanced selector on `eventCategory = Management`: `up --require-cloudtrail` goes
//!      through again, with no warning.

use aws_sdk_cloudtrail::types::{
    AdvancedEventSelector, AdvancedFieldSelector, DataResource, EventSelector, ReadWriteType,
};
use e2e::inventory::{Inventory, Shape};
use e2e::{Account, Checks, Output, Proxy, http_request};

/// What the deployer says when no trail logs management events.
const NO_TRAIL: &str = "no CloudTrail trail is logging management events in us-east-1";

/// The CloudTrail operations the deployer sent, in order.
fn cloudtrail_calls(proxy: &Proxy) -> Vec<String> {
    proxy.calls().into_iter().filter(|c| c.service == "cloudtrail").map(|c| c.operation).collect()
}

fn mutating(proxy: &Proxy) -> Vec<String> {
    proxy.mutating_calls().iter().map(|c| c.name()).collect()
}

/// `up --require-cloudtrail` refused before any change, saying why.
fn check_refused(c: &mut Checks, what: &str, run: &Output, proxy: &Proxy) {
    c.eq(&format!("{what}: exit code"), run.code, 1);
    for needle in [NO_TRAIL, "--require-cloudtrail was given"] {
        c.check(run.stderr.contains(needle), format!("{what}: the error says {needle:?}:\n{run}"));
    }
    c.check(!run.stderr.contains("could not query"), format!("{what}: every trail could be read:\n{run}"));
    c.eq(&format!("{what}: mutating calls"), mutating(proxy), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_requires_a_trail_that_logs_management_events() {
    let account = Account::start().await;
    let stack = account.stack("trail");
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let require = ["up", "--require-cloudtrail", "--artifact", art];
    let mut c = Checks::new();

    // ------------------------------------------------------------------ 1. no trail
    proxy.reset();
    let run = deployer.run(&require).await;
    check_refused(&mut c, "no trail", &run, proxy);
    c.eq("no trail: CloudTrail calls", cloudtrail_calls(proxy), vec!["DescribeTrails"]);

    // ------------------------------------------------------------------ 2. a trail, not logging
    // CreateTrail needs its bucket to exist (moto checks it too); moto's S3 takes an unsigned PUT.
    let bucket = format!("{}-trail", n.stack);
    let (status, body) = http_request(account.moto.url(), "PUT", &format!("/{bucket}"), None).expect("PUT bucket");
    assert_eq!(status, 200, "CreateBucket {bucket}: {body}");
    let trail = format!("{}-audit", n.stack);
    aws.cloudtrail
        .create_trail()
        .name(&trail)
        .s3_bucket_name(&bucket)
        .is_multi_region_trail(true)
        .send()
        .await
        .expect("CreateTrail");
    proxy.reset();
    let run = deployer.run(&require).await;
    check_refused(&mut c, "trail not logging", &run, proxy);
    c.eq("trail not logging: CloudTrail calls", cloudtrail_calls(proxy), vec!["DescribeTrails", "GetTrailStatus"]);
    c.eq(
        "refused twice: nothing of the stack was made",
        Inventory::scan(aws).await.leftovers(&Shape::of(&stack).await).len(),
        0,
    );

    // ------------------------------------------------------------------ 3. logging
    aws.cloudtrail.start_logging().name(&trail).send().await.expect("StartLogging");
    proxy.reset();
    let run = deployer.run(&require).await;
    c.eq("trail logging: up --require-cloudtrail exit code", run.code, 0);
    c.check(!run.stderr.contains("CloudTrail"), format!("trail logging: no CloudTrail warning:\n{run}"));
    c.eq(
        "trail logging: CloudTrail calls",
        cloudtrail_calls(proxy),
        vec!["DescribeTrails", "GetTrailStatus", "GetEventSelectors"],
    );
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&stack).await, "trail logging: up");

    // ------------------------------------------------------------------ 4. data events only
    let data_only = EventSelector::builder()
        .read_write_type(ReadWriteType::All)
        .include_management_events(false)
        .data_resources(DataResource::builder().r#type("AWS::S3::Object").values("arn:aws:s3").build())
        .build();
    aws.cloudtrail
        .put_event_selectors()
        .trail_name(&trail)
        .event_selectors(data_only)
        .send()
        .await
        .expect("PutEventSelectors (data events)");
    proxy.reset();
    let run = deployer.run(&["up", "--artifact", art]).await;
    c.eq("data events only: up exit code", run.code, 0);
    c.check(
        run.stderr.contains(&format!("warning: {NO_TRAIL}")),
        format!("data events only: up warns {NO_TRAIL:?}:\n{run}"),
    );
    c.eq("data events only: mutating calls", mutating(proxy), Vec::<String>::new());
    c.eq(
        "data events only: CloudTrail calls",
        cloudtrail_calls(proxy),
        vec!["DescribeTrails", "GetTrailStatus", "GetEventSelectors"],
    );

    // ------------------------------------------------------------------ 5. advanced selectors
    let management = AdvancedEventSelector::builder()
        .name("management events")
        .field_selectors(
            AdvancedFieldSelector::builder().field("eventCategory").equals("Management").build().expect("selector"),
        )
        .build()
        .expect("advanced selector");
    aws.cloudtrail
        .put_event_selectors()
        .trail_name(&trail)
        .advanced_event_selectors(management)
        .send()
        .await
        .expect("PutEventSelectors (advanced)");
    proxy.reset();
    let run = deployer.run(&require).await;
    c.eq("advanced management selector: up --require-cloudtrail exit code", run.code, 0);
    c.check(!run.stderr.contains("CloudTrail"), format!("advanced management selector: no CloudTrail warning:\n{run}"));
    c.eq("advanced management selector: mutating calls", mutating(proxy), Vec::<String>::new());

    c.finish("CloudTrail preflight");
}
