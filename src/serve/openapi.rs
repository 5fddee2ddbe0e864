//! The server's OpenAPI 3.1 document (`GET /openapi.json`). Written by hand; the tests keep
//! it in sync with the types: the `amend` object's properties are the [`Policy`] fields, every
//! route the router has is a path here, and the requests the tests send validate against it.
//!
//! [`Policy`]: super::Policy

use serde_json::{json, Value};

/// The document.
pub fn document() -> Value {
    let error = json!({
        "description": "An OpenAI-style error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "amend serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "An OpenAI-compatible chat server that answers each call through a correction strategy."
        },
        "paths": {
            "/v1/chat/completions": {"post": {
                "operationId": "createChatCompletion",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
                "responses": {
                    "200": {"description": "The answer, or with `stream` a text/event-stream of chunks", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
                        "text/event-stream": {"schema": {"type": "string"}}
                    }},
                    "400": error, "401": error, "404": error, "413": error, "429": error,
                    "502": error, "504": error
                }
            }},
            "/v1/models": {"get": {
                "operationId": "listModels",
                "responses": {"200": {"description": "The served model and its aliases", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["object", "data"],
                    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
                        "type": "object", "required": ["id", "object"],
                        "properties": {"id": {"type": "string"}, "object": {"const": "model"}, "created": {"type": "integer"}, "owned_by": {"type": "string"}}
                    }}}
                }}}}, "401": error}
            }},
            "/v1/amend/mistakes": {"get": {
                "operationId": "listMistakes",
                "description": "The mistakes the server's requests located (oldest first), from the store it holds",
                "parameters": [
                    {"name": "task", "in": "query", "schema": {"type": "string"}},
                    {"name": "model", "in": "query", "schema": {"type": "string"}},
                    {"name": "outcome", "in": "query", "schema": {"type": "string", "enum": ["fixed", "not_fixed", "made_worse", "unverified"]}},
                    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "run", "in": "query", "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "The records", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["object", "data"],
                    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Mistake"}}}
                }}}}, "400": error, "401": error, "404": error}
            }},
            "/v1/amend/mistakes/{id}": {"get": {
                "operationId": "getMistake",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The record", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Mistake"}}}}, "401": error, "404": error}
            }},
            "/health": {"get": {"operationId": "health", "responses": {"200": {"description": "The server is up", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/metrics": {"get": {"operationId": "metrics", "responses": {"200": {"description": "OpenMetrics text", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}, "401": error}}},
            "/openapi.json": {"get": {"operationId": "openapi", "responses": {"200": {"description": "This document", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["message", "type"],
                    "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}
                }}},
                "Message": {"type": "object", "required": ["role"], "properties": {
                    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
                    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}}, {"type": "null"}]},
                    "name": {"type": "string"},
                    "tool_calls": {"type": "array"},
                    "tool_call_id": {"type": "string"}
                }},
                "Budget": {"type": "object", "additionalProperties": false, "properties": {
                    "max_calls": {"type": "integer", "minimum": 0},
                    "max_tokens_total": {"type": "integer", "minimum": 0},
                    "deadline_s": {"type": "number", "exclusiveMinimum": 0}
                }},
                "Amend": {"type": "object", "additionalProperties": false, "description": "amend's per-request policy; every field optional, the server's defaults fill the rest", "properties": {
                    "strategy": {"type": "string", "enum": ["none", "recommended", "default", "baseline", "self-consistency", "sc", "wait", "rise", "backtrack", "search"]},
                    "critic": {"type": "string", "description": "arith, ground, llm, llm-step, gold, or chain:A,B"},
                    "verifier": {"type": "string"},
                    "select": {"type": "string", "enum": ["majority", "verified", "anchored"]},
                    "samples": {"type": "integer", "minimum": 1},
                    "temperature": {"type": "number", "minimum": 0},
                    "turns": {"type": "integer", "minimum": 1},
                    "rise_mode": {"type": "string", "enum": ["majority", "oracle", "critic"]},
                    "max_backtracks": {"type": "integer", "minimum": 0},
                    "accept": {"type": "string", "enum": ["verified", "always"]},
                    "resample_until": {"type": "string", "enum": ["differs", "accepted"]},
                    "critic_votes": {"type": "integer", "minimum": 1},
                    "calculator": {"type": "boolean"},
                    "search_k": {"type": "integer", "minimum": 1},
                    "beam": {"type": "integer", "minimum": 1},
                    "rank": {"type": "string", "enum": ["logprob", "rollout"]},
                    "stepwise": {"type": "boolean", "description": "backtracking a line at a time: each step checked before it is sent"},
                    "unverified": {"type": "string", "enum": ["send", "stop"]},
                    "rectifier": {"type": "string", "description": "a logit rectifier from the server's `rectifiers` (local model only)"},
                    "lambda": {"type": "number", "minimum": 0, "description": "the rectifier's fusion weight; needs `rectifier`"},
                    "budget": {"$ref": "#/components/schemas/Budget"}
                }},
                "ChatRequest": {"type": "object", "required": ["model", "messages"], "properties": {
                    "model": {"type": "string"},
                    "messages": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Message"}},
                    "stream": {"type": ["boolean", "null"]},
                    "stream_options": {"type": ["object", "null"], "properties": {"include_usage": {"type": ["boolean", "null"]}}},
                    "temperature": {"type": ["number", "null"]},
                    "top_p": {"type": ["number", "null"]},
                    "max_tokens": {"type": ["integer", "null"], "minimum": 0},
                    "max_completion_tokens": {"type": ["integer", "null"], "minimum": 0},
                    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
                    "seed": {"type": ["integer", "null"], "minimum": 0},
                    "n": {"type": ["integer", "null"], "minimum": 1},
                    "tools": {"type": ["array", "null"]},
                    "tool_choice": {},
                    "response_format": {"type": ["object", "null"]},
                    "amend": {"$ref": "#/components/schemas/Amend"}
                }},
                "Mistake": {"type": "object", "required": ["id", "time", "task", "model", "input", "steps", "critic", "rationale", "outcome", "tokens"], "properties": {
                    "id": {"type": "string"}, "time": {"type": "string"}, "task": {"type": "string"}, "model": {"type": "string"},
                    "run": {"type": ["string", "null"]}, "input": {"type": "string"}, "reference": {"type": ["string", "null"]},
                    "steps": {"type": "array", "items": {"type": "string"}}, "step": {"type": ["integer", "null"]},
                    "critic": {"type": "string"}, "rationale": {"type": "string"}, "correction": {"type": ["string", "null"]},
                    "answer_before": {"type": ["string", "null"]}, "answer_after": {"type": ["string", "null"]},
                    "outcome": {"type": "string", "enum": ["fixed", "not_fixed", "made_worse", "unverified"]},
                    "tokens": {"type": "integer"}, "trace": {"type": ["string", "null"]}
                }},
                "Usage": {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": {
                    "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}
                }},
                "ChatCompletion": {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage"], "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "chat.completion"},
                    "created": {"type": "integer"},
                    "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"], "properties": {
                        "index": {"type": "integer"},
                        "message": {"type": "object", "required": ["role", "content"], "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}}},
                        "finish_reason": {"type": "string"}
                    }}},
                    "usage": {"$ref": "#/components/schemas/Usage"},
                    "amend": {"type": "object", "description": "What amend did: strategy, calls, located mistakes, the verifier's check of the answer, budget stop, trace id"}
                }}
            }
        },
        "security": [{"bearer": []}, {}]
    })
}

/// The document as a server serves it: [`document`] with the names its model answers to as
/// the examples of a request's `model` (so a generated request can name a served model).
pub fn for_server(served: &[String]) -> Value {
    let mut doc = document();
    if let Some(model) = doc
        .pointer_mut("/components/schemas/ChatRequest/properties/model")
        .and_then(Value::as_object_mut)
    {
        model.insert("examples".into(), json!(served));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_amend_object_documents_every_policy_field() {
        let doc = document();
        let documented: std::collections::BTreeSet<String> = doc["components"]["schemas"]["Amend"]
            ["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let fields: std::collections::BTreeSet<String> =
            serde_json::to_value(super::super::Policy::default())
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
        assert_eq!(documented, fields);
    }
}
