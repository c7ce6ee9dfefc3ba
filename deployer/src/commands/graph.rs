//! `movies-stack graph`: the stack's resources as the registry (`stack.rs`) builds them from the
//! config, with their dependencies: what `up` would create and in which order, without any AWS
//! call. `--output json` for scripts (the e2e suite derives the inventory it expects from it),
//! `--dot` for Graphviz.

use std::sync::Arc;

use crate::cli::{GraphArgs, Output};
use crate::config::Config;
use crate::error::{Result, exit};
use crate::package::Artifact;
use crate::resources::{Need, Teardown};
use crate::ui::Printer;

pub fn run(config: &Config, args: &GraphArgs, output: Output, printer: Arc<dyn Printer>) -> Result<i32> {
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let nodes: Vec<_> = graph.names().into_iter().filter_map(|(name, _)| graph.node(name).cloned()).collect();
    let (rounds, chain) = graph.bound();
    let chain: Vec<String> = chain.iter().map(|n| n.to_string()).collect();
    let (delete_rounds, delete_chain) = graph.teardown_bound(|_| true);
    let delete_chain: Vec<String> = delete_chain.iter().map(|n| n.to_string()).collect();
    if args.dot {
        let mut dot = format!("digraph \"{}\" {{\n  rankdir=LR;\n", config.stack);
        for n in &nodes {
            let style = if n.wanted() { "" } else { ", style=dashed" };
            dot.push_str(&format!("  \"{}\" [label=\"{}\\n{}\"{style}];\n", n.name(), n.name(), n.kind()));
            for d in n.deps() {
                let style = match (d.need, d.teardown) {
                    (Need::Ready, _) => " [style=bold, label=\"ready\"]",
                    (_, Teardown::GoesWith) => " [style=dotted, label=\"deleted with\"]",
                    (_, Teardown::DependencyFirst) => " [style=dashed, label=\"deleted after\"]",
                    _ => "",
                };
                dot.push_str(&format!("  \"{}\" -> \"{}\"{style};\n", d.on, n.name()));
            }
        }
        dot.push('}');
        printer.out(&dot);
        return Ok(exit::OK);
    }
    match output {
        Output::Json => printer.out(
            &serde_json::json!({
                "stack": config.stack,
                "resources": graph.describe(),
                "bound": {"create_rounds": rounds, "chain": chain},
                "teardown_bound": {"delete_rounds": delete_rounds, "chain": delete_chain},
            })
            .to_string(),
        ),
        Output::Human => {
            let mut text = format!("Stack {}: {}, in dependency order:", config.stack, graph.size_text());
            let id_width = nodes.iter().map(|n| n.name().to_string().len()).max().unwrap_or(0);
            let kind_width = nodes.iter().map(|n| n.kind().label().len()).max().unwrap_or(0);
            for n in &nodes {
                let deps: Vec<String> = n
                    .deps()
                    .iter()
                    .map(|d| match (d.need, d.teardown) {
                        (Need::Ready, _) => format!("{} (ready)", d.on),
                        (_, Teardown::GoesWith) => format!("{} (deleted with it)", d.on),
                        (_, Teardown::DependencyFirst) => format!("{} (deleted after it)", d.on),
                        _ => d.on.to_string(),
                    })
                    .collect();
                let after = if deps.is_empty() { String::new() } else { format!("  after {}", deps.join(", ")) };
                let off = if n.wanted() { "" } else { "  [off]" };
                let line = format!("  {:<id_width$}  {:<kind_width$}{after}{off}", n.name().to_string(), n.kind());
                text.push('\n');
                text.push_str(line.trim_end());
            }
            text.push_str(&format!("\nThe longest chain of create calls: {rounds} ({}).", chain.join(" -> ")));
            text.push_str(&format!(
                "\nThe longest chain of delete calls: {delete_rounds} ({}).",
                delete_chain.join(" -> ")
            ));
            printer.out(&text);
        }
    }
    Ok(exit::OK)
}
