//! The pipeline file as written (TOML, before any check): what [`super::file`] reads.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::tools::ToolSpec;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) templates: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) tools: BTreeMap<String, Spanned<ToolSpec>>,
    #[serde(default)]
    pub(super) nodes: Vec<Spanned<RawNode>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_calls: Option<u32>,
    pub(super) max_reasks: Option<u32>,
    pub(super) max_retries: Option<u32>,
    pub(super) max_rollbacks: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) id: Spanned<String>,
    pub(super) kind: Spanned<String>,
    #[serde(default)]
    pub(super) after: Vec<Spanned<String>>,
    pub(super) template: Option<Spanned<String>>,
    pub(super) output: Option<Spanned<String>>,
    pub(super) schema: Option<toml::Value>,
    pub(super) constrain: Option<Spanned<bool>>,
    pub(super) max_tokens: Option<u32>,
    pub(super) prefill: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) stop: Vec<String>,
    pub(super) suffix: Option<String>,
    pub(super) tool: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) args: BTreeMap<String, Spanned<String>>,
    pub(super) args_from: Option<Spanned<String>>,
    pub(super) on_external: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) idempotent: bool,
    pub(super) critic: Option<Spanned<String>>,
    pub(super) target: Option<Spanned<String>>,
    pub(super) when: Option<Spanned<String>>,
}

pub(super) const LLM_FIELDS: &str =
    "template/output/schema/constrain/max_tokens/prefill/stop/suffix";
pub(super) const TOOL_FIELDS: &str = "tool/args/args_from/on_external";
pub(super) const CRITIC_FIELDS: &str = "critic/target/when";

impl RawNode {
    pub(super) fn llm_fields(&self) -> bool {
        self.template.is_some()
            || self.output.is_some()
            || self.schema.is_some()
            || self.constrain.is_some()
            || self.max_tokens.is_some()
            || self.prefill.is_some()
            || !self.stop.is_empty()
            || self.suffix.is_some()
    }

    pub(super) fn tool_fields(&self) -> bool {
        self.tool.is_some()
            || !self.args.is_empty()
            || self.args_from.is_some()
            || self.on_external.is_some()
    }

    pub(super) fn critic_fields(&self) -> bool {
        self.critic.is_some() || self.target.is_some() || self.when.is_some()
    }
}
