//! The exact calculator tool.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::calc;
use crate::pipeline::tool::{check_keys, InternalClass, Tool, ToolError};

/// `{"expr": "3 * (4 + 1)"}` gives `"15"` (exact: the `arith` critic's evaluator).
#[derive(Debug, Clone, Copy, Default)]
pub struct Calculator;

#[async_trait]
impl Tool for Calculator {
    fn kind(&self) -> &str {
        "calculator"
    }

    fn params(&self) -> &[&'static str] {
        &["expr"]
    }

    fn side_effects(&self) -> bool {
        false
    }

    async fn call(&self, args: &Map<String, Value>) -> Result<Value, ToolError> {
        check_keys(self.params(), 1, args)?;
        let expr = match args.get("expr") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            other => {
                return Err(ToolError::internal(
                    InternalClass::BadArgumentValues,
                    format!("expr must be an arithmetic expression as a string, got {other:?}"),
                ))
            }
        };
        let v = calc::eval(&expr).ok_or_else(|| {
            ToolError::internal(
                InternalClass::BadArgumentValues,
                format!("{expr:?} is not an arithmetic expression over numbers (+ - * / and parentheses)"),
            )
        })?;
        Ok(Value::String(calc::write_value(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn computes_exactly_and_names_bad_arguments() {
        let c = Calculator;
        let v = c
            .call(&args(serde_json::json!({"expr": "3 * (4 + 1) / 2"})))
            .await;
        assert_eq!(v, Ok(Value::from("7.5")));
        let e = c
            .call(&args(serde_json::json!({"expr": "three apples"})))
            .await;
        assert!(matches!(
            e,
            Err(ToolError::Internal {
                class: InternalClass::BadArgumentValues,
                ..
            })
        ));
        let e = c
            .call(&args(serde_json::json!({"expression": "1+1"})))
            .await;
        assert!(matches!(
            e,
            Err(ToolError::Internal {
                class: InternalClass::BadArgumentKeys,
                ..
            })
        ));
    }
}
