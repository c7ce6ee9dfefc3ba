//! DynamoDB table lifecycle (aws-behaviours.md §4.7, §7; DynamoDB API reference):
//! - after CreateTable the table is `CREATING` (DescribeTable, and the CreateTable answer);
//!   item calls answer ResourceNotFoundException and UpdateTable / DeleteTable
//!   ResourceInUseException until it is `ACTIVE`;
//! - UpdateContinuousBackups answers ContinuousBackupsUnavailableException ("Backups are being
//!   enabled for the table") for a while after creation (terraform-provider-aws `updatePITR`
//!   retries exactly that message).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Exchange;
use crate::proxy::Fault;

/// Operations on a table's items.
const ITEM_OPERATIONS: [&str; 10] = [
    "PutItem",
    "GetItem",
    "DeleteItem",
    "UpdateItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
];

/// Tables by name, with when they were created.
#[derive(Debug, Default)]
pub struct Tables {
    created: HashMap<String, Instant>,
}

/// Every table a request names: `TableName`, the keys of `RequestItems`, and the `TableName`s
/// inside `TransactItems`.
fn tables_named(input: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        input.get("TableName").and_then(Value::as_str).map(str::to_string).into_iter().collect();
    if let Some(items) = input.get("RequestItems").and_then(Value::as_object) {
        names.extend(items.keys().cloned());
    }
    if let Some(items) = input.get("TransactItems").and_then(Value::as_array) {
        for item in items.iter().filter_map(Value::as_object) {
            names.extend(item.values().filter_map(|op| op.get("TableName")?.as_str().map(str::to_string)));
        }
    }
    names
}

impl Tables {
    pub fn record(&mut self, ex: &Exchange, now: Instant) {
        if ex.service != "dynamodb" {
            return;
        }
        let Some(name) = ex.str_at(&["TableName"]) else { return };
        match ex.operation.as_str() {
            "CreateTable" => {
                self.created.insert(name.to_string(), now);
            }
            "DeleteTable" => {
                self.created.remove(name);
            }
            _ => {}
        }
    }

    fn creating(&self, table: &str, now: Instant, window: Duration) -> bool {
        self.created.get(table).is_some_and(|t| now.saturating_duration_since(*t) < window)
    }

    /// A call a `CREATING` table cannot take yet.
    pub fn not_active(&self, ex: &Exchange, now: Instant, window: Duration) -> Option<Fault> {
        if ex.service != "dynamodb" {
            return None;
        }
        let table = tables_named(&ex.input).into_iter().find(|t| self.creating(t, now, window))?;
        let fault = |code: &str, message: String| Some(Fault { status: 400, code: code.into(), message });
        match ex.operation.as_str() {
            op if ITEM_OPERATIONS.contains(&op) => {
                fault("ResourceNotFoundException", "Requested resource not found".into())
            }
            "UpdateTable" | "DeleteTable" => fault(
                "ResourceInUseException",
                format!("Attempt to change a resource which is still in use: Table is being created: {table}"),
            ),
            _ => None,
        }
    }

    pub fn pitr_unavailable(&self, ex: &Exchange, now: Instant, window: Duration) -> Option<Fault> {
        if !(ex.service == "dynamodb" && ex.operation == "UpdateContinuousBackups") {
            return None;
        }
        let table = ex.str_at(&["TableName"])?;
        self.created.get(table).filter(|t| now.saturating_duration_since(**t) < window)?;
        Some(Fault {
            status: 400,
            code: "ContinuousBackupsUnavailableException".into(),
            message: format!("Backups are being enabled for the table: {table}. Please retry later"),
        })
    }

    /// CreateTable's and DescribeTable's answers say `CREATING` inside the window.
    pub fn rewrite(&self, ex: &Exchange, body: &mut Value, now: Instant, window: Duration) -> bool {
        let key = match (ex.service.as_str(), ex.operation.as_str()) {
            ("dynamodb", "CreateTable") => "TableDescription",
            ("dynamodb", "DescribeTable") => "Table",
            _ => return false,
        };
        let Some(table) = ex.str_at(&["TableName"]) else { return false };
        if !self.creating(table, now, window) {
            return false;
        }
        match body.get_mut(key).and_then(Value::as_object_mut) {
            Some(desc) => {
                desc.insert("TableStatus".into(), Value::from("CREATING"));
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "dynamodb".into(), operation: operation.into(), input }
    }

    #[test]
    fn a_new_table_is_creating_then_active() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut tables = Tables::default();
        tables.record(&ex("CreateTable", json!({"TableName": "locks"})), t0);

        let put = ex("PutItem", json!({"TableName": "locks", "Item": {}}));
        assert_eq!(tables.not_active(&put, t0, w).unwrap().code, "ResourceNotFoundException");
        let batch = ex("BatchWriteItem", json!({"RequestItems": {"locks": []}}));
        assert!(tables.not_active(&batch, t0, w).is_some());
        let tx = ex("TransactWriteItems", json!({"TransactItems": [{"Put": {"TableName": "locks"}}]}));
        assert!(tables.not_active(&tx, t0, w).is_some());
        assert_eq!(
            tables.not_active(&ex("UpdateTable", json!({"TableName": "locks"})), t0, w).unwrap().code,
            "ResourceInUseException"
        );
        assert!(tables.not_active(&ex("DescribeTable", json!({"TableName": "locks"})), t0, w).is_none());
        assert!(tables.not_active(&put, t0 + w, w).is_none());

        let mut described = json!({"Table": {"TableName": "locks", "TableStatus": "ACTIVE"}});
        assert!(tables.rewrite(&ex("DescribeTable", json!({"TableName": "locks"})), &mut described, t0, w));
        assert_eq!(described["Table"]["TableStatus"], "CREATING");
        let mut later = json!({"Table": {"TableStatus": "ACTIVE"}});
        assert!(!tables.rewrite(&ex("DescribeTable", json!({"TableName": "locks"})), &mut later, t0 + w, w));

        let pitr = ex("UpdateContinuousBackups", json!({"TableName": "locks"}));
        let f = tables.pitr_unavailable(&pitr, t0 + w, Duration::from_secs(2)).unwrap();
        assert_eq!(f.message, "Backups are being enabled for the table: locks. Please retry later");
        assert!(tables.pitr_unavailable(&pitr, t0 + Duration::from_secs(2), Duration::from_secs(2)).is_none());

        tables.record(&ex("DeleteTable", json!({"TableName": "locks"})), t0);
        assert!(tables.not_active(&put, t0, w).is_none());
    }
}
