//! Issue 4, `keys`: the only command that prints API key values.
//!
//! - `keys --output json` gives, per tier, the id of the stack's output and the value the SDK's
//!   GetApiKey(includeValue=true) returns for it; human `keys` prints both values too.
//! - `keys --tier premium` (JSON and human) prints the premium key only.
//! - No other command prints a key value, on stdout or stderr: `up` (cold with -vv, then human,
//!   JSON, -v), `status` (human, JSON, -vv), `plan` (human, JSON), `down --yes` (human, -vv).

use e2e::{Account, Checks, Output};
use serde_json::Value;

/// Whether `run` shows any of `secrets` on stdout or stderr.
fn leaks<'a>(run: &Output, secrets: &[&'a str]) -> Vec<&'a str> {
    secrets.iter().copied().filter(|s| run.stdout.contains(s) || run.stderr.contains(s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_prints_the_values_and_nothing_else_does() {
    let account = Account::start().await;
    let stack = account.stack("keys");
    let (aws, n, deployer, art) = (&account.aws, &stack.names, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    let started = std::time::Instant::now();

    // Every run that must not print a key value; checked once the values are known.
    let mut quiet: Vec<Output> = Vec::new();

    // The cold up at -vv: the CreateApiKey answers carry the values.
    let cold = deployer.run(&["-vv", "up", "--artifact", art]).await;
    cold.assert_ok();
    quiet.push(cold);
    for args in
        [vec!["up", "--artifact", art], vec!["-v", "up", "--artifact", art], vec!["-vv", "up", "--artifact", art]]
    {
        let run = deployer.run(&args).await;
        c.eq(&format!("{:?}: exit code", run.args), run.code, 0);
        quiet.push(run);
    }
    let (up_json_run, up_json) = deployer.up_json(&["--artifact", art]).await;
    quiet.push(up_json_run);
    let standard_id = up_json["outputs"]["StandardApiKeyId"].as_str().unwrap_or_default().to_string();
    let premium_id = up_json["outputs"]["PremiumApiKeyId"].as_str().unwrap_or_default().to_string();
    c.check(!standard_id.is_empty() && !premium_id.is_empty(), format!("up outputs the key ids: {up_json}"));

    // ------------------------------------------------------------------ the truth, from the SDK
    let mut truth = Vec::new();
    for id in [&standard_id, &premium_id] {
        let k = aws.apigateway.get_api_key().api_key(id).include_value(true).send().await.expect("GetApiKey");
        let value = k.value().unwrap_or_default().to_string();
        assert!(value.len() >= 20, "GetApiKey({id}, includeValue) returned a value of {} chars", value.len());
        truth.push(value);
    }
    let (standard_value, premium_value) = (truth[0].clone(), truth[1].clone());
    assert_ne!(standard_value, premium_value, "the two keys have distinct values");
    let secrets = [standard_value.as_str(), premium_value.as_str()];

    // ------------------------------------------------------------------ keys --output json
    let keys = deployer.run(&["--output", "json", "keys"]).await;
    c.eq("keys --output json: exit code", keys.code, 0);
    let json: Value = serde_json::from_str(keys.stdout.trim()).unwrap_or(Value::Null);
    c.eq("keys: stack", json["stack"].as_str(), Some(n.stack.as_str()));
    for (tier, id, value) in [("standard", &standard_id, &standard_value), ("premium", &premium_id, &premium_value)] {
        c.eq(&format!("keys: {tier} id = up's output"), json["keys"][tier]["id"].as_str(), Some(id.as_str()));
        c.eq(&format!("keys: {tier} value = GetApiKey's"), json["keys"][tier]["value"].as_str(), Some(value.as_str()));
    }
    c.eq(
        "keys: tiers listed",
        json["keys"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["premium".to_string(), "standard".to_string()]),
    );
    // The leak detector itself works: it finds both values in `keys`' stdout.
    c.eq("keys: control: both values found in stdout", leaks(&keys, &secrets).len(), 2);
    c.eq("keys: values on stderr", leaks(&Output { stdout: String::new(), ..keys.clone() }, &secrets).len(), 0);

    let human = deployer.run(&["keys"]).await;
    c.eq("keys (human): exit code", human.code, 0);
    for (tier, value) in [("standard", &standard_value), ("premium", &premium_value)] {
        c.check(
            human.stdout.lines().any(|l| l.starts_with(tier) && l.contains(value.as_str())),
            format!("keys (human): a `{tier}` line with its value:\n{human}"),
        );
    }
    c.eq(
        "keys (human): values on stderr",
        leaks(&Output { stdout: String::new(), ..human.clone() }, &secrets).len(),
        0,
    );

    // ------------------------------------------------------------------ keys --tier premium
    let prem = deployer.run(&["--output", "json", "keys", "--tier", "premium"]).await;
    c.eq("keys --tier premium: exit code", prem.code, 0);
    let json: Value = serde_json::from_str(prem.stdout.trim()).unwrap_or(Value::Null);
    c.eq(
        "keys --tier premium: tiers listed",
        json["keys"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["premium".to_string()]),
    );
    c.eq("keys --tier premium: value", json["keys"]["premium"]["value"].as_str(), Some(premium_value.as_str()));
    c.eq("keys --tier premium: id", json["keys"]["premium"]["id"].as_str(), Some(premium_id.as_str()));
    c.check(!prem.stdout.contains(&standard_value), format!("keys --tier premium hides the standard value:\n{prem}"));
    c.check(
        !prem.stdout.contains(&standard_id),
        format!("keys --tier premium does not name the standard key:\n{prem}"),
    );
    let prem_h = deployer.run(&["keys", "--tier", "premium"]).await;
    c.eq("keys --tier premium (human): exit code", prem_h.code, 0);
    c.check(prem_h.stdout.contains(&premium_value), format!("keys --tier premium (human) prints it:\n{prem_h}"));
    c.check(
        !prem_h.stdout.contains(&standard_value) && !prem_h.stdout.lines().any(|l| l.starts_with("standard")),
        format!("keys --tier premium (human) prints only premium:\n{prem_h}"),
    );
    let std_only = deployer.run(&["--output", "json", "keys", "--tier", "standard"]).await;
    c.check(
        std_only.code == 0 && std_only.stdout.contains(&standard_value) && !std_only.stdout.contains(&premium_value),
        format!("keys --tier standard prints only standard:\n{std_only}"),
    );

    // ------------------------------------------------------------------ status and plan
    for args in [
        vec!["status"],
        vec!["--output", "json", "status"],
        vec!["-vv", "status"],
        vec!["plan", "--artifact", art],
        vec!["--output", "json", "plan", "--artifact", art],
        vec!["-vv", "plan", "--artifact", art],
    ] {
        let run = deployer.run(&args).await;
        c.eq(&format!("{:?}: exit code", run.args), run.code, 0);
        quiet.push(run);
    }
    // status names the key ids (outputs), never the values.
    if let Some(st) = quiet.iter().find(|r| r.args.ends_with(&["--output".into(), "json".into(), "status".into()])) {
        let json: Value = serde_json::from_str(st.stdout.trim()).unwrap_or(Value::Null);
        c.eq("status: outputs.PremiumApiKeyId", json["outputs"]["PremiumApiKeyId"].as_str(), Some(premium_id.as_str()));
    }

    // ------------------------------------------------------------------ down (human and -vv)
    // The first down deletes the keys (their values could show up in the delete path); the
    // second finds nothing left but the table.
    let down = deployer.run(&["-vv", "down", "--yes"]).await;
    c.eq("down --yes -vv: exit code", down.code, 0);
    quiet.push(down);
    let down2 = deployer.run(&["down", "--yes"]).await;
    c.eq("down --yes (again): exit code", down2.code, 0);
    quiet.push(down2);

    for run in &quiet {
        let leaked = leaks(run, &secrets);
        c.check(
            leaked.is_empty(),
            format!(
                "`movies-stack {}` prints no API key value (leaked {} value(s); stdout {} bytes, stderr {} bytes)",
                run.args.iter().skip(4).cloned().collect::<Vec<_>>().join(" "),
                leaked.len(),
                run.stdout.len(),
                run.stderr.len()
            ),
        );
    }
    println!("checked {} runs for key values; {:.1}s in all", quiet.len(), started.elapsed().as_secs_f64());
    c.finish("keys");
}
