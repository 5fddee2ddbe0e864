//! The JSON-schema tool: a value checked against a schema (`jsonschema`).

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::pipeline::tool::{check_keys, InternalClass, Tool, ToolError};

/// `{"value": JSON}` gives the value back when the schema accepts it; otherwise an internal
/// error listing each violation with its path (so a re-asked node can fix exactly those).
pub struct JsonSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema")
            .field("schema", &self.schema)
            .finish()
    }
}

impl JsonSchema {
    /// A validator of `schema`.
    ///
    /// # Errors
    /// When `schema` is not a valid JSON schema.
    pub fn new(schema: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| format!("schema does not compile: {e}"))?;
        Ok(Self { schema, validator })
    }

    /// Every violation of `value`, one line each (`/path: message`); empty when valid.
    pub fn violations(&self, value: &Value) -> Vec<String> {
        self.validator
            .iter_errors(value)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect()
    }
}

#[async_trait]
impl Tool for JsonSchema {
    fn kind(&self) -> &str {
        "json_schema"
    }

    fn params(&self) -> &[&'static str] {
        &["value"]
    }

    fn side_effects(&self) -> bool {
        false
    }

    async fn call(&self, args: &Map<String, Value>) -> Result<Value, ToolError> {
        check_keys(self.params(), 1, args)?;
        let value = args.get("value").cloned().unwrap_or(Value::Null);
        // A value that arrives as a JSON string (a rendered template) is parsed first.
        let value = match value {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            v => v,
        };
        let v = self.violations(&value);
        if v.is_empty() {
            Ok(value)
        } else {
            Err(ToolError::internal(
                InternalClass::BadArgumentValues,
                format!("the value does not match the schema: {}", v.join("; ")),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn names_each_violation() {
        let t = JsonSchema::new(json!({"type": "object", "required": ["qty"],
            "properties": {"qty": {"type": "integer"}}}))
        .expect("schema");
        let ok = t
            .call(
                &json!({"value": {"qty": 3}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
            .await;
        assert_eq!(ok, Ok(json!({"qty": 3})));
        let e = t
            .call(
                &json!({"value": "{\"qty\": \"three\"}"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
            .await
            .expect_err("invalid");
        assert!(e.to_string().contains("/qty"), "{e}");
        assert!(JsonSchema::new(json!({"type": 5})).is_err());
    }
}
