//! `movies-stack export [--out DIR]`: hand the live stack to CloudFormation without recreating
//! anything. Reads the stack (no change to it), and only when it is in sync with the config
//! (so that the template says what is live), writes into DIR:
//! - `template.json`: the resources CloudFormation can import, each `Retain` on delete and on
//!   replacement, referring to each other by logical id; no outputs (an import may not add any);
//! - `template-complete.json`: the same, plus what CloudFormation takes over only in an update
//!   after the import (the function's permission), and the stack's outputs;
//! - `resources-to-import.json`: each importable resource's logical id and the identifier its
//!   type's schema names, from the live ids (the `--resources-to-import` of
//!   `aws cloudformation create-change-set --change-set-type IMPORT`);
//! - `README.md`: the commands, and what CloudFormation cannot import and what to do about it.
//!
//! Never a key value: the templates name the keys, CloudFormation reads the rest from AWS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::cfn::{CfnResource, Import};
use crate::cli::{ExportArgs, Output};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::graph::Compared;
use crate::package::Artifact;
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

pub const TEMPLATE: &str = "template.json";
pub const COMPLETE: &str = "template-complete.json";
pub const TO_IMPORT: &str = "resources-to-import.json";
pub const README: &str = "README.md";

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &ExportArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}-cloudformation", config.stack)));
    if out.exists() && !out.is_dir() {
        return Err(Error::input(format!("--out {}: exists and is not a directory", out.display())));
    }
    // The code is not compared: CloudFormation reads it from S3 (the template's parameters).
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let (found, _) = session.sweep(&graph, None).await?;
    let mut resources = Vec::new();
    let mut differs = Vec::new();
    for (name, compared) in graph.compare(&ctx, &found) {
        match compared {
            Compared::Present { live, changes } if changes.is_empty() => {
                let node = graph.node(name).ok_or_else(|| Error::other(format!("internal: no node `{name}`")))?;
                resources.extend(node.export(&ctx, &live)?);
            }
            Compared::Off => {}
            Compared::Present { .. } => differs.push(format!("{name} drifted")),
            Compared::Missing => differs.push(format!("{name} missing")),
            Compared::Unwanted => differs.push(format!("{name} turned off but present")),
            Compared::Error(e) => return Err(Error::other(format!("{name}: {e}"))),
        }
    }
    if !differs.is_empty() {
        return Err(Error::other(format!(
            "the live stack differs from the config ({}): run `movies-stack up` first, so that the template says what \
             is live. Nothing written",
            differs.join(", ")
        )));
    }
    let docs = Documents::of(&config.stack, &resources);
    write_all(&out, &docs)?;
    let (mut imported, mut not_imported) = (Vec::new(), Vec::new());
    for r in &resources {
        let mut entry = json!({ "resource": r.resource.to_string(), "logical_id": r.logical_id, "type": r.type_name });
        match &r.import {
            Import::Identifier(parts) => {
                entry["identifier"] = identifier_json(parts);
                imported.push(entry);
            }
            Import::Not { why, instead, later } => {
                entry["why"] = json!(why);
                entry["instead"] = json!(instead);
                entry["in_template_complete"] = json!(later);
                not_imported.push(entry);
            }
        }
    }
    match output {
        Output::Json => printer.out(
            &json!({
                "stack": config.stack,
                "out": out.display().to_string(),
                "files": [TEMPLATE, COMPLETE, TO_IMPORT, README],
                "imported": imported,
                "not_imported": not_imported,
            })
            .to_string(),
        ),
        Output::Human => {
            let mut text = format!(
                "Wrote {} ({TEMPLATE}, {COMPLETE}, {TO_IMPORT}, {README}): {} resources CloudFormation can \
                 import, {} it cannot:",
                out.display(),
                imported.len(),
                not_imported.len()
            );
            for r in resources.iter() {
                if let Import::Not { why, .. } = &r.import {
                    text.push_str(&format!("\n  {} ({}): {why}", r.logical_id, r.type_name));
                }
            }
            text.push_str(&format!("\nNext: {}", Path::new(&out).join(README).display()));
            printer.out(&text);
        }
    }
    Ok(exit::OK)
}

/// What `export` writes, as values: pure, for the tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Documents {
    pub template: Value,
    pub complete: Value,
    pub to_import: Value,
    pub readme: String,
}

impl Documents {
    pub fn of(stack: &str, resources: &[CfnResource]) -> Documents {
        let importable: Vec<&CfnResource> = resources.iter().filter(|r| r.importable()).collect();
        let later: Vec<&CfnResource> =
            resources.iter().filter(|r| matches!(r.import, Import::Not { later: true, .. })).collect();
        let complete = template(stack, importable.iter().chain(later.iter()).copied().collect(), true);
        let template = template(stack, importable.clone(), false);
        let to_import = Value::Array(
            importable
                .iter()
                .filter_map(|r| match &r.import {
                    Import::Identifier(parts) => Some(json!({
                        "ResourceType": r.type_name,
                        "LogicalResourceId": r.logical_id,
                        "ResourceIdentifier": identifier_json(parts),
                    })),
                    Import::Not { .. } => None,
                })
                .collect(),
        );
        let readme = readme(stack, resources);
        Documents { template, complete, to_import, readme }
    }
}

/// An import identifier as CloudFormation's `ResourceIdentifier`: `{"property": "live value"}`.
fn identifier_json(parts: &[(&'static str, String)]) -> Value {
    Value::Object(parts.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

fn template(stack: &str, resources: Vec<&CfnResource>, with_outputs: bool) -> Value {
    let mut parameters = Map::new();
    let mut body = Map::new();
    let mut outputs = Map::new();
    for r in &resources {
        for p in &r.parameters {
            parameters.insert(p.name.to_string(), json!({ "Type": "String", "Description": p.description }));
        }
        let mut resource = json!({
            "Type": r.type_name,
            // Deleting the stack, or a replacement, never deletes what it took over.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": r.properties,
        });
        let depends_on: Vec<&String> =
            r.depends_on.iter().filter(|d| resources.iter().any(|o| &o.logical_id == *d)).collect();
        if !depends_on.is_empty() {
            resource["DependsOn"] = json!(depends_on);
        }
        if !r.lint_exceptions.is_empty() {
            let rules: Vec<&str> = r.lint_exceptions.iter().map(|(rule, _)| *rule).collect();
            resource["Metadata"] = json!({ "cfn-lint": { "config": { "ignore_checks": rules } } });
        }
        body.insert(r.logical_id.clone(), resource);
        if with_outputs {
            for (name, value) in &r.outputs {
                outputs.insert(name.to_string(), json!({ "Value": value }));
            }
        }
    }
    let mut t = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("movies-stack stack {stack}, exported from the live stack by `movies-stack export`"),
    });
    if !parameters.is_empty() {
        t["Parameters"] = Value::Object(parameters);
    }
    t["Resources"] = Value::Object(body);
    if !outputs.is_empty() {
        t["Outputs"] = Value::Object(outputs);
    }
    t
}

fn readme(stack: &str, resources: &[CfnResource]) -> String {
    let importable = resources.iter().filter(|r| r.importable()).count();
    let params: BTreeMap<&str, &str> =
        resources.iter().flat_map(|r| r.parameters.iter().map(|p| (p.name, p.description))).collect();
    let parameters: Vec<String> = params.keys().map(|p| format!("ParameterKey={p},ParameterValue=...")).collect();
    let mut text = format!(
        "# Handing the stack `{stack}` to CloudFormation\n\n\
         Written by `movies-stack export` from the live stack, which was in sync with its config. Nothing was \
         changed. Every resource is `DeletionPolicy: Retain` and `UpdateReplacePolicy: Retain`: deleting the \
         CloudFormation stack, or a replacement, never deletes the table, the API or the keys.\n\n\
         ## Import ({importable} resources)\n\n\
         The templates read the function's code from S3: upload its zip first (`movies-stack package --out \
         function.zip`, the code `up` deploys), and pass its place as the parameters:\n\n\
         ```sh\n\
         aws s3 cp function.zip s3://BUCKET/KEY\n\
         aws cloudformation create-change-set --stack-name {stack} --change-set-name import \\\n    \
         --change-set-type IMPORT --template-body file://{TEMPLATE} \\\n    \
         --resources-to-import file://{TO_IMPORT} --capabilities CAPABILITY_NAMED_IAM \\\n    \
         --parameters {}\n\
         aws cloudformation wait change-set-create-complete --stack-name {stack} --change-set-name import\n\
         aws cloudformation execute-change-set --stack-name {stack} --change-set-name import\n\
         aws cloudformation wait stack-import-complete --stack-name {stack}\n\
         ```\n\n\
         Then update the stack with `{COMPLETE}`: it adds what CloudFormation takes over only after an import \
         (below) and the stack's outputs (an import may not add outputs):\n\n\
         ```sh\n\
         aws cloudformation deploy --stack-name {stack} --template-file {COMPLETE} \\\n    \
         --capabilities CAPABILITY_NAMED_IAM --parameter-overrides {}\n\
         ```\n\n\
         Then run drift detection (`aws cloudformation detect-stack-drift --stack-name {stack}`).\n\n",
        parameters.join(" "),
        params.keys().map(|p| format!("{p}=...")).collect::<Vec<_>>().join(" "),
    );
    let not: Vec<&CfnResource> = resources.iter().filter(|r| !r.importable()).collect();
    if !not.is_empty() {
        text.push_str("## What CloudFormation does not import\n\n");
        for r in not {
            if let Import::Not { why, instead, .. } = &r.import {
                text.push_str(&format!(
                    "- `{}` ({}, stack resource `{}`): {why}.\n  What to do: {instead}.\n",
                    r.logical_id, r.type_name, r.resource
                ));
            }
        }
        text.push('\n');
    }
    let exceptions: BTreeMap<(&str, &str), Vec<&str>> = resources.iter().fold(BTreeMap::new(), |mut m, r| {
        for (rule, why) in &r.lint_exceptions {
            m.entry((*rule, *why)).or_default().push(r.logical_id.as_str());
        }
        m
    });
    if !exceptions.is_empty() {
        text.push_str("## cfn-lint\n\nThe templates pass `cfn-lint` without errors. Rules turned off where they do not apply (in the resource's `Metadata`):\n\n");
        for ((rule, why), ids) in exceptions {
            text.push_str(&format!("- {rule} on {}: {why}.\n", ids.join(", ")));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "## Afterwards\n\n\
         CloudFormation owns the stack: do not run `movies-stack up` or `down` on `{stack}` again (they refuse a \
         stack whose table a CloudFormation stack owns). Read-only commands (`status`, `keys`, `logs`, `usage`, \
         `smoke`) keep working. The resources keep their `movies-stack:*` tags: remove them in a later update if \
         you like.\n"
    ));
    text
}

fn write_all(dir: &Path, docs: &Documents) -> Result<()> {
    let io = |path: &Path, e: std::io::Error| Error::input(format!("--out {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    for (name, text) in [
        (TEMPLATE, pretty(&docs.template)),
        (COMPLETE, pretty(&docs.complete)),
        (TO_IMPORT, pretty(&docs.to_import)),
        (README, docs.readme.clone()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::{self, identifier};
    use crate::ids::{Id, Name};

    fn resources() -> Vec<CfnResource> {
        let vpc: Id<()> = Id::new("vpc");
        vec![
            CfnResource::new(
                vpc,
                "AWS::EC2::VPC",
                json!({"CidrBlock": "10.0.0.0/16"}),
                identifier(&[("VpcId", "vpc-1")]),
            )
            .with_output("VpcId", cfn::reference(vpc)),
            CfnResource::new(
                Name::of("api-permission"),
                "AWS::Lambda::Permission",
                json!({"FunctionName": "f"}),
                Import::Not { why: "no statement id".into(), instead: "update".into(), later: true },
            ),
            CfnResource::new(
                Name::of("apigw-account"),
                "AWS::ApiGateway::Account",
                json!({}),
                Import::Not { why: "shared".into(), instead: "nothing".into(), later: false },
            )
            .after(vec!["Vpc".into()]),
        ]
    }

    #[test]
    fn the_import_template_holds_only_what_can_be_imported_retained_and_without_outputs() {
        let d = Documents::of("dev", &resources());
        let r = d.template["Resources"].as_object().unwrap();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["Vpc"]);
        assert_eq!(r["Vpc"]["DeletionPolicy"], "Retain");
        assert_eq!(r["Vpc"]["UpdateReplacePolicy"], "Retain");
        assert!(d.template.get("Outputs").is_none(), "an import may not add outputs");
        let c = d.complete["Resources"].as_object().unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["ApiPermission", "Vpc"], "the permission, not the shared setting");
        assert_eq!(d.complete["Outputs"]["VpcId"]["Value"], json!({"Ref": "Vpc"}));
        assert_eq!(
            d.to_import,
            json!([{"ResourceType": "AWS::EC2::VPC", "LogicalResourceId": "Vpc", "ResourceIdentifier": {"VpcId": "vpc-1"}}])
        );
        assert!(d.readme.contains("`ApigwAccount` (AWS::ApiGateway::Account"), "{}", d.readme);
        assert!(d.readme.contains("--change-set-type IMPORT"));
    }

    #[test]
    fn depends_on_names_only_resources_of_the_same_template() {
        let mut rs = resources();
        rs[1] = rs[1].clone().after(vec!["Vpc".into(), "Elsewhere".into()]);
        let d = Documents::of("dev", &rs);
        assert_eq!(d.complete["Resources"]["ApiPermission"]["DependsOn"], json!(["Vpc"]));
    }
}
