//! The DynamoDB table: PK `id` (S), on-demand, stream NEW_AND_OLD_IMAGES, encryption at rest,
//! deletion protection and point-in-time recovery. It holds the data: never replaced, and deleted
//! only when the command layer decides to (`down` keeps it unless asked).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, PointInTimeRecoverySpecification,
    PointInTimeRecoveryStatus, ScalarAttributeType, SseSpecification, SseStatus, StreamSpecification, StreamViewType,
    TableDescription, TableStatus, Tag,
};
use aws_smithy_types::error::operation::BuildError;

use super::{Ctx, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Codes, Error, ErrorKind, Result};
use crate::wait::{backoff, retry, wait_until};
use serde_json::{Value, json};

pub const ID: Id<LiveTable> = Id::new("table");

/// Codes only the table's calls meet: UpdateContinuousBackups right after CreateTable answers
/// "Backups are being enabled for the table" (terraform `updatePITR` retries it).
const CODES: &Codes = &[("ContinuousBackupsUnavailableException", ErrorKind::Propagating)];

/// One item by its partition key `id`, read strongly consistent (`smoke` reads back what the API
/// just wrote). `None`: no such item.
pub async fn get_item(
    ctx: &Ctx,
    table: &str,
    id: &str,
) -> Result<Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>> {
    let out = ctx
        .aws
        .dynamodb
        .get_item()
        .table_name(table)
        .key(KEY.0, aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .aws_with("DynamoDB", "GetItem", CODES)?;
    Ok(out.item)
}

/// Delete one item by its partition key `id` (an item already gone is not an error).
pub async fn delete_item(ctx: &Ctx, table: &str, id: &str) -> Result<()> {
    ctx.aws
        .dynamodb
        .delete_item()
        .table_name(table)
        .key(KEY.0, aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()))
        .send()
        .await
        .aws_with("DynamoDB", "DeleteItem", CODES)?;
    Ok(())
}

/// The partition key: (attribute, key type, attribute type).
const KEY: (&str, &str, &str) = ("id", "HASH", "S");
const BILLING_MODE: &str = "PAY_PER_REQUEST";
const STREAM_VIEW: &str = "NEW_AND_OLD_IMAGES";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
}

/// The live table, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    pub name: String,
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, ... (health).
    pub status: String,
    pub stream_arn: Option<String>,
    /// (attribute, key type, attribute type), in key-schema order.
    pub key_schema: Vec<(String, String, String)>,
    pub billing_mode: String,
    /// The stream view type when a stream is enabled.
    pub stream: Option<String>,
    /// Encrypted with a KMS key (`SSEDescription.Status` ENABLED or on its way there).
    pub encryption: bool,
    pub deletion_protection: bool,
    pub point_in_time_recovery: bool,
}

fn describe_key(key: &[(String, String, String)]) -> String {
    key.iter().map(|(name, kind, ty)| format!("{name} ({kind}, {ty})")).collect::<Vec<_>>().join(", ")
}

fn on_off(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

/// A table's ARN, from its name.
pub fn arn(ctx: &Ctx, name: &str) -> String {
    ctx.arn("dynamodb", &format!("table/{name}"))
}

/// One difference of the table; each is one kind of UpdateTable (DynamoDB takes one per call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// Never changed: replacing the table would destroy its data.
    KeySchema {
        desired: String,
        live: String,
    },
    BillingMode {
        live: String,
    },
    Stream {
        live: Option<String>,
    },
    Encryption,
    DeletionProtection,
    PointInTimeRecovery,
}

impl KindChange for TableChange {
    fn show(&self) -> FieldChange {
        match self {
            TableChange::KeySchema { desired, live } => FieldChange::replace("key_schema", desired, live),
            TableChange::BillingMode { live } => FieldChange::update("billing_mode", BILLING_MODE, live),
            TableChange::Stream { live } => {
                FieldChange::update("stream", STREAM_VIEW, live.as_deref().unwrap_or("disabled"))
            }
            TableChange::Encryption => FieldChange::update("encryption", on_off(true), on_off(false)),
            TableChange::DeletionProtection => FieldChange::update("deletion_protection", on_off(true), on_off(false)),
            TableChange::PointInTimeRecovery => {
                FieldChange::update("point_in_time_recovery", on_off(true), on_off(false))
            }
        }
    }
}

pub fn diff(_desired: &Table, live: &LiveTable) -> Vec<TableChange> {
    let mut changes = Vec::new();
    let key = vec![(KEY.0.to_string(), KEY.1.to_string(), KEY.2.to_string())];
    if live.key_schema != key {
        changes.push(TableChange::KeySchema { desired: describe_key(&key), live: describe_key(&live.key_schema) });
    }
    if live.billing_mode != BILLING_MODE {
        changes.push(TableChange::BillingMode { live: live.billing_mode.clone() });
    }
    if live.stream.as_deref() != Some(STREAM_VIEW) {
        changes.push(TableChange::Stream { live: live.stream.clone() });
    }
    if !live.encryption {
        changes.push(TableChange::Encryption);
    }
    if !live.deletion_protection {
        changes.push(TableChange::DeletionProtection);
    }
    if !live.point_in_time_recovery {
        changes.push(TableChange::PointInTimeRecovery);
    }
    changes
}

/// The SDK builders only fail when a required field is missing: a bug here, not an AWS error.
fn built<T>(r: std::result::Result<T, BuildError>) -> Result<T> {
    r.map_err(|e| Error::other(format!("internal: building a DynamoDB request: {e}")))
}

fn stream_spec(enabled: bool) -> Result<StreamSpecification> {
    let spec = StreamSpecification::builder().stream_enabled(enabled);
    let spec = if enabled { spec.stream_view_type(StreamViewType::from(STREAM_VIEW)) } else { spec };
    built(spec.build())
}

/// `Enabled = true` means server-side encryption with the AWS managed KMS key `aws/dynamodb`
/// (key use visible in CloudTrail); without it DynamoDB still encrypts, with an AWS owned key,
/// and `DescribeTable` then shows no `SSEDescription`. We compare only the status, not the key
/// (moto reports its own made-up KMS key ARN).
fn sse_spec() -> SseSpecification {
    SseSpecification::builder().enabled(true).build()
}

fn live_from(table: &TableDescription, point_in_time_recovery: bool) -> LiveTable {
    let attr_type = |name: &str| {
        table
            .attribute_definitions()
            .iter()
            .find(|a| a.attribute_name() == name)
            .map(|a| a.attribute_type().as_str().to_string())
            .unwrap_or_default()
    };
    LiveTable {
        name: table.table_name().unwrap_or_default().to_string(),
        arn: table.table_arn().unwrap_or_default().to_string(),
        status: table.table_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        stream_arn: table.latest_stream_arn().map(str::to_string),
        key_schema: table
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name().to_string(), k.key_type().as_str().to_string(), attr_type(k.attribute_name())))
            .collect(),
        // AWS omits BillingModeSummary for a table that has always been provisioned.
        billing_mode: table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "PROVISIONED".to_string()),
        stream: table
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .map(|s| s.stream_view_type().map(|v| v.as_str().to_string()).unwrap_or_default()),
        encryption: table
            .sse_description()
            .and_then(|s| s.status())
            .is_some_and(|s| matches!(s, SseStatus::Enabled | SseStatus::Enabling | SseStatus::Updating)),
        deletion_protection: table.deletion_protection_enabled().unwrap_or(false),
        point_in_time_recovery,
    }
}

impl Table {
    /// DescribeTable; `None` when the table does not exist.
    async fn describe(&self, ctx: &Ctx, name: &str) -> Result<Option<TableDescription>> {
        match ctx.aws.dynamodb.describe_table().table_name(name).send().await.aws_with(
            "DynamoDB",
            "DescribeTable",
            CODES,
        ) {
            Ok(out) => Ok(out.table().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn pitr_enabled(&self, ctx: &Ctx) -> Result<bool> {
        let out = ctx.aws.dynamodb.describe_continuous_backups().table_name(&self.name).send().await.aws_with(
            "DynamoDB",
            "DescribeContinuousBackups",
            CODES,
        )?;
        Ok(out
            .continuous_backups_description()
            .and_then(|c| c.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            == Some(&PointInTimeRecoveryStatus::Enabled))
    }

    async fn check_ours(&self, ctx: &Ctx, arn: &str) -> Result<()> {
        let mut tags = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = ctx
                .aws
                .dynamodb
                .list_tags_of_resource()
                .resource_arn(arn)
                .set_next_token(token.take())
                .send()
                .await
                .aws_with("DynamoDB", "ListTagsOfResource", CODES)?;
            tags.extend(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())));
            match out.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        if ctx.owns(ID.name(), tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Ok(())
        } else {
            Err(ctx.foreign("DynamoDB table", &self.name).await)
        }
    }

    /// Tables take UpdateTable / UpdateContinuousBackups only when ACTIVE (else
    /// ResourceInUseException). Returns the description once ACTIVE.
    async fn wait_active(&self, ctx: &Ctx) -> Result<TableDescription> {
        wait_until(
            ctx,
            ID,
            "the table to be ACTIVE",
            ctx.timeouts.resource_ready,
            // Twice a second: a cheap read that ends the longest wait of a cold `up` (about 10 s
            // on AWS); a back-off would see ACTIVE seconds late.
            backoff::TWICE_A_SECOND,
            || async {
                let table = self.describe(ctx, &self.name).await?.ok_or_else(|| {
                    Error::other(format!("DynamoDB table `{}` disappeared while we waited for it", self.name))
                })?;
                Ok((table.table_status() == Some(&TableStatus::Active)).then_some(table))
            },
        )
        .await
    }

    /// Enable PITR, then read it back. Right after the table turns ACTIVE, UpdateContinuousBackups
    /// answers ContinuousBackupsUnavailableException "Backups are being enabled for the table"
    /// for a while (terraform-provider-aws retries the same message); without the read-back, a
    /// run can end with PITR still DISABLED.
    async fn enable_pitr(&self, ctx: &Ctx) -> Result<()> {
        let spec = built(PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(true).build())?;
        retry(
            ctx,
            ID,
            "DynamoDB to accept point-in-time recovery",
            &[ErrorKind::Propagating, ErrorKind::Conflict],
            ctx.timeouts.resource_ready,
            backoff::LONG_STATE,
            || async {
                ctx.aws
                    .dynamodb
                    .update_continuous_backups()
                    .table_name(&self.name)
                    .point_in_time_recovery_specification(spec.clone())
                    .send()
                    .await
                    .aws_with("DynamoDB", "UpdateContinuousBackups", CODES)
            },
        )
        .await?;
        wait_until(
            ctx,
            ID,
            "point-in-time recovery to read back ENABLED",
            ctx.timeouts.resource_ready,
            backoff::STATE,
            || async { Ok(self.pitr_enabled(ctx).await?.then_some(())) },
        )
        .await
    }

    /// One UpdateTable call, once the table is ACTIVE. DynamoDB allows only one kind of change
    /// per UpdateTable (billing mode, stream, ...), so each change gets its own call.
    async fn update_table(
        &self,
        ctx: &Ctx,
        build: impl Fn(
            aws_sdk_dynamodb::operation::update_table::builders::UpdateTableFluentBuilder,
        ) -> aws_sdk_dynamodb::operation::update_table::builders::UpdateTableFluentBuilder,
    ) -> Result<()> {
        self.wait_active(ctx).await?;
        retry(
            ctx,
            ID,
            "the table to finish its current update",
            &[ErrorKind::Conflict],
            ctx.timeouts.resource_ready,
            backoff::LONG_STATE,
            || async {
                build(ctx.aws.dynamodb.update_table().table_name(&self.name)).send().await.aws_with(
                    "DynamoDB",
                    "UpdateTable",
                    CODES,
                )
            },
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Table {
    type Live = LiveTable;
    type Change = TableChange;

    fn id(&self) -> Id<LiveTable> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::Table
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let actions = [
            "dynamodb:DescribeTable",
            "dynamodb:CreateTable",
            "dynamodb:TagResource",
            "dynamodb:ListTagsOfResource",
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:UpdateTable",
            "dynamodb:DeleteTable",
        ];
        vec![Grant::new("TheTable", &actions, [s.arn("dynamodb", &format!("table/{}", self.name))])]
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn create_rounds(&self) -> u32 {
        4 // CreateTable, DescribeTable (ACTIVE), UpdateContinuousBackups, its read-back
    }

    fn export(&self, ctx: &Ctx, live: &LiveTable) -> Vec<CfnResource> {
        let attributes: Vec<Value> =
            live.key_schema.iter().map(|(name, _, ty)| json!({ "AttributeName": name, "AttributeType": ty })).collect();
        let key: Vec<Value> =
            live.key_schema.iter().map(|(name, key, _)| json!({ "AttributeName": name, "KeyType": key })).collect();
        let properties = json!({
            "TableName": live.name,
            "AttributeDefinitions": attributes,
            "KeySchema": key,
            "BillingMode": live.billing_mode,
            "StreamSpecification": { "StreamViewType": live.stream },
            "SSESpecification": { "SSEEnabled": live.encryption },
            "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": live.point_in_time_recovery },
            "DeletionProtectionEnabled": live.deletion_protection,
            "Tags": cfn::tags(&ctx.tags(ID.name())),
        });
        vec![CfnResource::new(ID, "AWS::DynamoDB::Table", properties, cfn::identifier(&[("TableName", &live.name)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveTable>> {
        // By name, both at once; DescribeContinuousBackups of a missing table is NotFound too.
        let pitr = async {
            match self.pitr_enabled(ctx).await {
                Err(e) if e.is_not_found() => Ok(false),
                other => other,
            }
        };
        // A table a CloudFormation stack owns is not ours to change: a name a CDK stack holds
        // would be fought over, and a stack handed over by `export` is CloudFormation's now.
        // Asked at once with the rest, whether the table exists or not.
        let owner = ctx.check_cloudformation_owner("DynamoDB table", &self.name);
        let (table, pitr, ()) = tokio::try_join!(self.describe(ctx, &self.name), pitr, owner)?;
        let Some(table) = table else { return Ok(None) };
        self.check_ours(ctx, table.table_arn().unwrap_or_default()).await?;
        Ok(Some(live_from(&table, pitr)))
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveTable) -> Result<Vec<TableChange>> {
        Ok(diff(self, live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveTable> {
        let tags = ctx
            .tags(ID.name())
            .into_iter()
            .map(|(k, v)| built(Tag::builder().key(k).value(v).build()))
            .collect::<Result<Vec<_>>>()?;
        ctx.aws
            .dynamodb
            .create_table()
            .table_name(&self.name)
            .attribute_definitions(built(
                AttributeDefinition::builder()
                    .attribute_name(KEY.0)
                    .attribute_type(ScalarAttributeType::from(KEY.2))
                    .build(),
            )?)
            .key_schema(built(
                KeySchemaElement::builder().attribute_name(KEY.0).key_type(KeyType::from(KEY.1)).build(),
            )?)
            .billing_mode(BillingMode::from(BILLING_MODE))
            .stream_specification(stream_spec(true)?)
            .sse_specification(sse_spec())
            .deletion_protection_enabled(true)
            .set_tags(Some(tags))
            .send()
            .await
            .aws_with("DynamoDB", "CreateTable", CODES)?;
        // A crash from here on leaves PITR off: `diff` reports it and `update` enables it.
        let table = self.wait_active(ctx).await?;
        self.enable_pitr(ctx).await?;
        Ok(live_from(&table, true))
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        _live: &LiveTable,
        changes: &[TableChange],
    ) -> Result<LiveTable> {
        for change in changes {
            match change {
                TableChange::KeySchema { desired, live } => {
                    return Err(Error::other(format!(
                        "DynamoDB table `{}` has key schema {live} but the stack wants {desired}: the key of a table \
                         cannot change, and replacing the table would destroy data, so movies-stack never does it. \
                         Export the data, delete the table yourself, and run again (or choose another table name)",
                        self.name
                    )));
                }
                TableChange::BillingMode { .. } => {
                    self.update_table(ctx, |u| u.billing_mode(BillingMode::from(BILLING_MODE))).await?
                }
                TableChange::Stream { live } => {
                    // An enabled stream's view type cannot be changed: disable it, then enable
                    // it with ours (a new stream, with a new ARN).
                    if live.is_some() {
                        let off = stream_spec(false)?;
                        self.update_table(ctx, |u| u.stream_specification(off.clone())).await?;
                    }
                    let on = stream_spec(true)?;
                    self.update_table(ctx, |u| u.stream_specification(on.clone())).await?;
                }
                TableChange::Encryption => self.update_table(ctx, |u| u.sse_specification(sse_spec())).await?,
                TableChange::DeletionProtection => {
                    self.update_table(ctx, |u| u.deletion_protection_enabled(true)).await?
                }
                TableChange::PointInTimeRecovery => {
                    self.wait_active(ctx).await?;
                    self.enable_pitr(ctx).await?;
                }
            }
        }
        // The stream ARN changes with a new stream: read it again.
        let table = self.wait_active(ctx).await?;
        Ok(live_from(&table, self.pitr_enabled(ctx).await?))
    }

    /// Deletes the table AND ITS DATA: the command layer calls this only when asked to.
    async fn delete(&self, ctx: &Ctx, live: &LiveTable) -> Result<()> {
        let name = live.name.clone();
        if live.deletion_protection {
            let res = retry(
                ctx,
                ID,
                "the table to finish its current update",
                &[ErrorKind::Conflict],
                ctx.timeouts.resource_ready,
                backoff::LONG_STATE,
                || async {
                    ctx.aws
                        .dynamodb
                        .update_table()
                        .table_name(&name)
                        .deletion_protection_enabled(false)
                        .send()
                        .await
                        .aws_with("DynamoDB", "UpdateTable", CODES)
                },
            )
            .await;
            match res {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let res = retry(
            ctx,
            ID,
            "the table to finish its current update",
            &[ErrorKind::Conflict],
            ctx.timeouts.resource_ready,
            backoff::LONG_STATE,
            || async {
                ctx.aws.dynamodb.delete_table().table_name(&name).send().await.aws_with(
                    "DynamoDB",
                    "DeleteTable",
                    CODES,
                )
            },
        )
        .await;
        crate::error::gone_is_ok(res)
    }

    fn health(&self, live: &LiveTable) -> Vec<(&'static str, String)> {
        vec![
            ("status", live.status.clone()),
            ("pitr", if live.point_in_time_recovery { "ENABLED" } else { "DISABLED" }.to_string()),
        ]
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveTable) -> Vec<(&'static str, String)> {
        vec![("TableName", live.name.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pitr_right_after_create_table_is_propagation() {
        let msg = "Backups are being enabled for the table: t. Please retry later";
        let kind = crate::error::classify_with(CODES, Some("ContinuousBackupsUnavailableException"), msg, Some(400));
        assert_eq!(kind, ErrorKind::Propagating);
    }

    fn live() -> LiveTable {
        LiveTable {
            name: "demo_table".into(),
            arn: "arn:aws:dynamodb:us-east-1:123456789012:table/demo_table".into(),
            status: "ACTIVE".into(),
            stream_arn: Some("arn:aws:dynamodb:us-east-1:123456789012:table/demo_table/stream/2026".into()),
            key_schema: vec![("id".into(), "HASH".into(), "S".into())],
            billing_mode: "PAY_PER_REQUEST".into(),
            stream: Some("NEW_AND_OLD_IMAGES".into()),
            encryption: true,
            deletion_protection: true,
            point_in_time_recovery: true,
        }
    }

    fn table() -> Table {
        Table { name: "demo_table".into() }
    }

    #[test]
    fn in_sync_table_has_no_changes() {
        assert!(diff(&table(), &live()).is_empty());
    }

    #[test]
    fn each_drift_is_one_change() {
        type Mutate = fn(&mut LiveTable);
        let cases: &[(Mutate, &str, &str, bool)] = &[
            (|l| l.key_schema = vec![("pk".into(), "HASH".into(), "S".into())], "key_schema", "pk (HASH, S)", true),
            (|l| l.key_schema[0].2 = "N".into(), "key_schema", "id (HASH, N)", true),
            (
                |l| l.key_schema.push(("sk".into(), "RANGE".into(), "S".into())),
                "key_schema",
                "id (HASH, S), sk (RANGE, S)",
                true,
            ),
            (|l| l.billing_mode = "PROVISIONED".into(), "billing_mode", "PROVISIONED", false),
            (|l| l.stream = None, "stream", "disabled", false),
            (|l| l.stream = Some("KEYS_ONLY".into()), "stream", "KEYS_ONLY", false),
            (|l| l.encryption = false, "encryption", "disabled", false),
            (|l| l.deletion_protection = false, "deletion_protection", "disabled", false),
            (|l| l.point_in_time_recovery = false, "point_in_time_recovery", "disabled", false),
        ];
        for (mutate, field, want_live, replace) in cases {
            let mut l = live();
            mutate(&mut l);
            let changes: Vec<FieldChange> = diff(&table(), &l).iter().map(KindChange::show).collect();
            assert_eq!(changes.len(), 1, "{field}: {changes:?}");
            assert_eq!(changes[0].field, *field);
            assert_eq!(changes[0].live, *want_live, "{field}");
            assert_eq!(changes[0].replace, *replace, "{field}");
        }
    }

    #[test]
    fn a_new_table_before_pitr_is_enabled_needs_only_pitr() {
        // What a crash between CreateTable and UpdateContinuousBackups leaves behind.
        let mut l = live();
        l.point_in_time_recovery = false;
        let changes = diff(&table(), &l);
        assert_eq!(changes, vec![TableChange::PointInTimeRecovery]);
        assert_eq!(changes[0].show(), FieldChange::update("point_in_time_recovery", "enabled", "disabled"));
    }

    #[test]
    fn live_table_is_read_from_describe_table() {
        use aws_sdk_dynamodb::types::{BillingModeSummary, SseDescription};
        let t = TableDescription::builder()
            .table_arn("arn:t")
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
            .billing_mode_summary(BillingModeSummary::builder().billing_mode(BillingMode::PayPerRequest).build())
            .stream_specification(stream_spec(true).unwrap())
            .latest_stream_arn("arn:t/stream/1")
            .sse_description(SseDescription::builder().status(SseStatus::Enabled).build())
            .deletion_protection_enabled(true)
            .build();
        let l = live_from(&t, true);
        assert!(diff(&table(), &l).is_empty(), "{l:?}");
        assert_eq!(l.stream_arn.as_deref(), Some("arn:t/stream/1"));

        // A table that was always provisioned has no BillingModeSummary; an AWS-owned-key
        // table has no SSEDescription.
        let bare = TableDescription::builder().table_arn("arn:t").build();
        let l = live_from(&bare, false);
        assert_eq!(l.billing_mode, "PROVISIONED");
        assert!(!l.encryption && l.stream.is_none() && !l.deletion_protection);
    }
}
