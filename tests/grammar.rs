//! Constrained decoding (`Request::grammar`): the local backend with the real default model
//! keeps every sample inside a GBNF grammar or a JSON schema; the API backend (in front of
//! the real llama-cpp-python server) refuses both kinds before any call: amend claims no
//! structured outputs for API servers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // Tests may panic: a failed assertion is how they report.

mod common;

use amend::{Grammar, Message, ModelError, Request};
use serde_json::{json, Value};

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["item", "quantity", "city"],
        "properties": {
            "item": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1},
            "city": {"type": "string"}
        },
        "additionalProperties": false
    })
}

fn extract() -> Request {
    Request::chat(vec![Message::user(
        "Order: Ana in Porto wants 3 lamps. Reply with only a JSON object with the fields \
         item, quantity and city.",
    )])
    .with_max_tokens(64)
}

#[cfg(feature = "local")]
mod local {
    use super::*;
    use amend::model::llama::{LocalModel, Options};
    use amend::{FinishReason, Model};

    fn assert_valid(text: &str, schema: &Value) {
        let v: Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
        let validator = jsonschema::validator_for(schema).expect("schema");
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{text:?} violates the schema: {errors:?}"
        );
    }

    async fn model() -> LocalModel {
        let opts = Options {
            n_ctx: 1024,
            max_ctx: 2048,
            n_seq: 4,
            threads: 1,
            ..Options::default()
        };
        LocalModel::load(&common::model_path(), opts)
            .await
            .expect("load the default model")
    }

    #[tokio::test]
    async fn every_sample_stays_inside_the_grammar_or_the_schema() {
        let m = model().await;
        let caps = m.capabilities();
        assert!(caps.gbnf && caps.json_schema);

        // A GBNF grammar: greedy and sampled answers are exactly one of its strings.
        let yes_no = Request::chat(vec![Message::user("Is Paris in France?")])
            .with_max_tokens(8)
            .with_grammar(Grammar::Gbnf(r#"root ::= "yes" | "no""#.into()));
        let r = m.generate(yes_no.clone()).await.expect("greedy");
        assert!(matches!(r.text(), "yes" | "no"), "{:?}", r.text());
        let r = m
            .generate(yes_no.with_sampling(1.0, 1.0).with_seed(3).with_n(4))
            .await
            .expect("sampled");
        for s in &r.samples {
            assert!(matches!(s.text.as_str(), "yes" | "no"), "{:?}", s.text);
            assert_eq!(
                s.finish,
                FinishReason::Eos,
                "a finished grammar ends the text"
            );
        }

        // A JSON schema: every sample is a valid record, greedy and at T = 1.
        let schema = order_schema();
        let constrained = extract().with_grammar(Grammar::JsonSchema(schema.clone()));
        let r = m.generate(constrained.clone()).await.expect("greedy json");
        assert_valid(r.text(), &schema);
        // Sampled, a string may run on until `max_tokens` (the documented exception: its
        // finish reason says so); every sample that ends by itself is a valid record.
        let r = m
            .generate(
                constrained
                    .with_max_tokens(160)
                    .with_sampling(0.7, 0.9)
                    .with_seed(11)
                    .with_n(4),
            )
            .await
            .expect("sampled json");
        let mut ended = 0;
        for s in &r.samples {
            match s.finish {
                FinishReason::Length => {}
                _ => {
                    assert_valid(&s.text, &schema);
                    ended += 1;
                }
            }
        }
        assert!(ended >= 2, "most samples should end: {:?}", r.samples);

        // The same model is unconstrained again on the next request.
        let free = Request::chat(vec![Message::user(
            "Is Paris in France? Answer in a sentence.",
        )])
        .with_max_tokens(12);
        let r = m.generate(free).await.expect("free");
        assert!(!matches!(r.text(), "yes" | "no"), "{:?}", r.text());
    }

    #[tokio::test]
    async fn a_bad_grammar_or_a_grammar_with_a_prefill_is_refused_clearly() {
        let m = model().await;
        let bad = extract().with_grammar(Grammar::Gbnf("root ::= (".into()));
        match m.generate(bad).await {
            Err(ModelError::InvalidRequest(msg)) => assert!(msg.contains("GBNF"), "{msg}"),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
        let with_prefill = extract()
            .with_prefill("{")
            .with_grammar(Grammar::JsonSchema(order_schema()));
        match m.generate(with_prefill).await {
            Err(ModelError::InvalidRequest(msg)) => assert!(msg.contains("prefill"), "{msg}"),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
        // The model still answers afterwards.
        assert!(m.generate(extract()).await.is_ok());
    }
}

#[tokio::test]
async fn an_api_backend_refuses_constraints_and_teacher_forcing_before_calling() {
    let (_server, _, _, m) = common::served().await;
    let caps = m.capabilities();
    assert!(!caps.json_schema && !caps.gbnf);
    for g in [
        Grammar::JsonSchema(order_schema()),
        Grammar::Gbnf(r#"root ::= "yes""#.into()),
    ] {
        let kind = g.kind();
        match m.generate(extract().with_grammar(g)).await {
            Err(ModelError::Unsupported { what, .. }) => assert_eq!(what, kind),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
    // Teacher forcing needs logits and hidden states an API does not return.
    assert!(!caps.teacher_forcing);
    let scored = m
        .score(amend::ScoreRequest {
            input: amend::Input::Chat(vec![Message::user("2 + 2?")]),
            continuation: "4".into(),
            top_k: 4,
            hidden: false,
            close: false,
        })
        .await;
    match scored {
        Err(ModelError::Unsupported { what, .. }) => assert!(what.contains("teacher"), "{what}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    // Unconstrained, the same server answers.
    assert!(!m
        .generate(extract())
        .await
        .expect("plain call")
        .text()
        .is_empty());
}
