//! A second `up` changes nothing (reads only), and a new artifact changes exactly the code and
//! the version the alias `live` runs.

use std::path::Path;

use e2e::artifact::{code_sha256, write_modified};
use e2e::proxy::count_by_name;
use e2e::{Account, Proxy};

fn print_counts(label: &str, proxy: &Proxy) {
    let calls = proxy.calls();
    let mutating = proxy.mutating_calls();
    println!("{label}: {} AWS calls, {} reads, {} mutating", calls.len(), calls.len() - mutating.len(), mutating.len());
    for (name, n) in count_by_name(&calls) {
        println!("    {n:4}  {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_up_changes_nothing_and_new_code_is_one_version() {
    let account = Account::start().await;
    let stack = account.stack("idem");
    let (proxy, n, deployer, art) = (&account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());

    // 1. Cold deploy.
    let (cold, json) = deployer.up_json(&["--artifact", art]).await;
    print_counts(&format!("cold up ({:.1}s)", cold.elapsed.as_secs_f64()), proxy);
    assert!(json["changes"].as_u64().is_some_and(|c| c > 0), "cold up reports changes: {json}");
    assert!(!proxy.mutating_calls().is_empty(), "cold up made no mutating call");

    // 2. Same config, same artifact: reads only.
    proxy.reset();
    let warm = deployer.run(&["up", "--artifact", art]).await;
    print_counts(&format!("second up ({:.1}s)", warm.elapsed.as_secs_f64()), proxy);
    warm.assert_ok();
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    assert!(mutating.is_empty(), "the second up made {} mutating calls: {mutating:#?}\n{warm}", mutating.len());
    assert!(!proxy.calls().is_empty(), "the second up made no call at all: it must read the cloud");
    let text = format!("{}\n{}", warm.stdout, warm.stderr).to_lowercase();
    assert!(text.contains("no changes"), "the second up does not say \"no changes\":\n{warm}");
    // Right after the cold up, which converged the stack to this very config and code: the sweep
    // that found it so is trusted, not made twice (issue 23).
    assert!(
        warm.stderr.contains("converged to this config and code")
            && !warm.stderr.contains("looking at the stack again"),
        "the second up trusts its one sweep:\n{warm}"
    );

    // Same again in JSON mode: `changes` is 0.
    proxy.reset();
    let (_, json) = deployer.up_json(&["--artifact", art]).await;
    assert_eq!(json["changes"].as_u64(), Some(0), "{json}");
    assert!(proxy.mutating_calls().is_empty(), "{:?}", proxy.mutating_calls());

    // 3. A different artifact: the code, published as a version, which the alias `live` takes.
    let modified_path = account.dir.path().join("handler-modified.zip");
    let modified = write_modified(Path::new(art), &modified_path, &n.stack);
    proxy.reset();
    let (run, json) = deployer.up_json(&["--artifact", modified_path.to_str().unwrap()]).await;
    print_counts(&format!("up with a new artifact ({:.1}s)", run.elapsed.as_secs_f64()), proxy);
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.name()).collect();
    assert_eq!(mutating, ["lambda UpdateFunctionCode", "lambda PublishVersion", "lambda UpdateAlias"], "\n{run}");
    assert_eq!(json["changes"].as_u64(), Some(2), "the function and its alias: {json}");
    // The previous run converged to other code: its word is not taken, the stack is looked at again.
    assert!(run.stderr.contains("looking at the stack again"), "a new artifact sweeps again:\n{run}");
    let f = account.aws.lambda.get_function().function_name(&n.function).send().await.expect("GetFunction");
    assert_eq!(f.configuration().and_then(|c| c.code_sha256()), Some(code_sha256(&modified).as_str()));

    // 4. And that new artifact again: nothing to do.
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", modified_path.to_str().unwrap()]).await;
    again.assert_ok();
    assert!(proxy.mutating_calls().is_empty(), "{:?}\n{again}", proxy.mutating_calls());
    print_counts("up with the same new artifact", proxy);
}
