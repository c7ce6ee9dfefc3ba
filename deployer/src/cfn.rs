//! How a live resource reads as CloudFormation, for `movies-stack export`: its `AWS::*` type, the
//! properties the stack sets (never AWS's defaults), references to the other resources by logical
//! id (`Ref`, `Fn::GetAtt`) rather than live ids, and the identifier CloudFormation's IMPORT
//! needs, or why it cannot import it. Each kind writes its own (`Resource::export`); the command
//! assembles them.

use serde_json::{Map, Value, json};

use crate::ids::{Id, Name};

/// One resource of the exported template.
#[derive(Debug, Clone, PartialEq)]
pub struct CfnResource {
    /// The stack resource it describes (`route-table-0`); one stack resource may be several
    /// CloudFormation resources (a route table and its subnet association).
    pub resource: Name,
    pub logical_id: String,
    pub type_name: &'static str,
    pub properties: Map<String, Value>,
    pub import: Import,
    /// Logical ids it must be created after, beyond those its references imply.
    pub depends_on: Vec<String>,
    /// Template parameters its properties refer to (what the live resource has and the template
    /// cannot carry: the function's code).
    pub parameters: Vec<Parameter>,
    /// The stack outputs it provides (name, value): ids and URLs, never a secret.
    pub outputs: Vec<(&'static str, Value)>,
    /// cfn-lint rules that do not apply to it: (rule, why), in its `Metadata` and the README.
    pub lint_exceptions: Vec<(&'static str, &'static str)>,
}

/// A template parameter: its name and what the user passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: &'static str,
    pub description: &'static str,
}

/// How CloudFormation takes the resource over.
#[derive(Debug, Clone, PartialEq)]
pub enum Import {
    /// Its primary identifier in CloudFormation's resource schema: (property, live value), in the
    /// schema's order.
    Identifier(Vec<(&'static str, String)>),
    /// CloudFormation cannot import it: why, and what the user does about it. `later`: the
    /// stack takes it in an update after the import (`template-complete.json`), CloudFormation
    /// making its own copy; otherwise it stays out of the stack.
    Not { why: String, instead: String, later: bool },
}

impl CfnResource {
    /// `logical_id` is [`logical_id`] of `resource`.
    pub fn new(resource: impl Into<Name>, type_name: &'static str, properties: Value, import: Import) -> CfnResource {
        let resource = resource.into();
        CfnResource::part(resource, "", type_name, properties, import)
    }

    /// A second CloudFormation resource of the same stack resource: its logical id ends in
    /// `suffix` (`RouteTable0` + `Association`).
    pub fn part(
        resource: Name,
        suffix: &str,
        type_name: &'static str,
        properties: Value,
        import: Import,
    ) -> CfnResource {
        let properties = match properties {
            Value::Object(map) => map,
            other => panic!("the properties of {type_name} must be an object, not {other}"),
        };
        CfnResource {
            resource,
            logical_id: format!("{}{suffix}", logical_id(resource)),
            type_name,
            properties,
            import,
            depends_on: Vec::new(),
            parameters: Vec::new(),
            outputs: Vec::new(),
            lint_exceptions: Vec::new(),
        }
    }

    /// Created after these logical ids.
    pub fn after(mut self, logical_ids: Vec<String>) -> CfnResource {
        self.depends_on = logical_ids;
        self
    }

    /// Its properties refer to this parameter (`{"Ref": name}`).
    pub fn with_parameter(mut self, name: &'static str, description: &'static str) -> CfnResource {
        self.parameters.push(Parameter { name, description });
        self
    }

    /// cfn-lint's `rule` does not apply to it, for the reason `why`.
    pub fn lint_exception(mut self, rule: &'static str, why: &'static str) -> CfnResource {
        self.lint_exceptions.push((rule, why));
        self
    }

    /// A stack output of it.
    pub fn with_output(mut self, name: &'static str, value: Value) -> CfnResource {
        self.outputs.push((name, value));
        self
    }

    pub fn importable(&self) -> bool {
        matches!(self.import, Import::Identifier(_))
    }
}

/// Import by these (property, live value) pairs.
pub fn identifier(parts: &[(&'static str, &str)]) -> Import {
    Import::Identifier(parts.iter().map(|(k, v)| (*k, v.to_string())).collect())
}

/// The logical id of a stack resource: its name in PascalCase (`route-table-0` → `RouteTable0`).
pub fn logical_id(name: impl Into<Name>) -> String {
    pascal_case(&name.into().to_string())
}

/// The words of `text` (runs of ASCII letters and digits) in PascalCase: `/{proxy+}` → `Proxy`.
pub fn pascal_case(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `{"Ref": <logical id of id>}`.
pub fn reference<T>(id: Id<T>) -> Value {
    json!({ "Ref": logical_id(id) })
}

/// `{"Fn::GetAtt": [<logical id of id>, attribute]}`.
pub fn attribute<T>(id: Id<T>, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [logical_id(id), attribute] })
}

/// The stack's tags in CloudFormation's list form.
pub fn tags(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({ "Key": k, "Value": v })).collect())
}

/// `{"Fn::Sub": text}`: `${AWS::Region}`, `${LogicalId}`, `${LogicalId.Attribute}` in `text`.
pub fn sub(text: impl Into<String>) -> Value {
    json!({ "Fn::Sub": text.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_the_names_in_pascal_case() {
        assert_eq!(logical_id(Name::of("vpc")), "Vpc");
        assert_eq!(logical_id(Id::<()>::indexed("route-table", 1)), "RouteTable1");
        assert_eq!(logical_id(Name::of("usage-plan-standard")), "UsagePlanStandard");
        assert_eq!(reference(Id::<()>::new("vpc")), json!({"Ref": "Vpc"}));
        assert_eq!(attribute(Id::<()>::new("table"), "Arn"), json!({"Fn::GetAtt": ["Table", "Arn"]}));
    }
}
