//! `movies-stack keys`: the API key values. The only command that prints a key value.

use std::sync::Arc;

use crate::cli::{KeysArgs, Output, Tier};
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::package::Artifact;
use crate::resources::{Inputs, Observed, api_key};
use crate::ui::Reporter;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &KeysArgs,
    output: Output,
    reporter: Arc<dyn Reporter>,
) -> Result<i32> {
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let ctx = super::connect(settings, config, reporter.clone(), false).await?;
    let tiers: Vec<&str> = match args.tier {
        Some(Tier::Standard) => vec!["standard"],
        Some(Tier::Premium) => vec!["premium"],
        None => vec!["standard", "premium"],
    };
    let mut keys = serde_json::Map::new();
    for tier in tiers {
        let id = format!("api-key-{tier}");
        let node = graph.get(&id).ok_or_else(|| Error::other(format!("internal: no resource {id}")))?;
        // Found by its tags; its plan membership does not matter here (lenient inputs).
        let key_id = match node.observe(&ctx, &Inputs::lenient()).await.map_err(|e| e.for_resource(&id))? {
            Observed::Present { outputs, .. } => outputs.get("id").cloned().unwrap_or_default(),
            Observed::Missing => {
                return Err(Error::other(format!(
                    "the {tier} API key of stack {} does not exist: run `movies-stack up`",
                    config.stack
                )));
            }
        };
        let value = api_key::key_value(&ctx, &key_id).await.map_err(|e| e.for_resource(&id))?;
        keys.insert(tier.to_string(), serde_json::json!({"id": key_id, "value": value}));
    }
    reporter.finish();
    match output {
        Output::Json => println!("{}", serde_json::json!({"stack": config.stack, "keys": keys})),
        Output::Human => {
            for (tier, k) in &keys {
                println!("{tier:<9} {}  (id {})", k["value"].as_str().unwrap_or(""), k["id"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(exit::OK)
}
