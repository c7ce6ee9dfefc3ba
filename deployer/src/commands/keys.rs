//! `movies-stack keys`: the API key values. The only command that prints a key value.

use std::sync::Arc;

use crate::cli::{KeysArgs, Output, Tier};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::package::Artifact;
use crate::resources::api_key::{self, LiveKey};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &KeysArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let tiers: Vec<&str> = match args.tier {
        Some(Tier::Standard) => vec!["standard"],
        Some(Tier::Premium) => vec!["premium"],
        None => vec!["standard", "premium"],
    };
    session.who_am_i().await?;
    let mut keys = serde_json::Map::new();
    for tier in tiers {
        let id = api_key::id(tier);
        let node = graph.node(id.name()).ok_or_else(|| Error::other(format!("internal: no resource {id}")))?;
        // Found by its tags; its plan membership does not matter here.
        let live = node.observe(&ctx).await.map_err(|e| e.for_resource(id))?;
        let Some(key) = live.as_ref().and_then(|l| l.downcast_ref::<LiveKey>()) else {
            return Err(Error::other(format!(
                "the {tier} API key of stack {} does not exist: run `movies-stack up`",
                config.stack
            )));
        };
        let value = api_key::key_value(&ctx, &key.id).await.map_err(|e| e.for_resource(id))?;
        keys.insert(tier.to_string(), serde_json::json!({"id": key.id, "value": value}));
    }
    match output {
        Output::Json => printer.out(&serde_json::json!({"stack": config.stack, "keys": keys}).to_string()),
        Output::Human => {
            let lines: Vec<String> = keys
                .iter()
                .map(|(tier, k)| {
                    format!("{tier:<9} {}  (id {})", k["value"].as_str().unwrap_or(""), k["id"].as_str().unwrap_or(""))
                })
                .collect();
            printer.out(&lines.join("\n"));
        }
    }
    Ok(exit::OK)
}
