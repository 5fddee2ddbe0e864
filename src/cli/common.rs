//! Helpers every subcommand shares: loading models and prompts, building a strategy context,
//! and speaking the library's option names as this CLI's flags.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::CommandFactory;

use super::{Cli, CriticModelArgs, ModelArgs};
use amend::model::{spec, LoadOptions, Model, RetryPolicy, Spec};
use amend::run::Context;
use amend::trace::{self, Writer};
use amend::Prompts;

/// The library's load options from the model flags.
pub fn load_options(m: &ModelArgs, fetch_default: bool) -> LoadOptions {
    LoadOptions {
        base_url: m.base_url.clone(),
        api_key_env: m.api_key_env.clone(),
        max_concurrency: m.concurrency,
        retry: RetryPolicy {
            max_retries: m.retries,
            timeout: Duration::from_secs_f64(m.timeout.max(0.001)),
            ..RetryPolicy::default()
        },
        n_ctx: m.ctx,
        threads: m.threads,
        kv: m.kv,
        prefill: m.prefill,
        fetch_default,
        ..LoadOptions::default()
    }
}

/// Load the model `spec` names with the model flags.
pub async fn load_model(spec: &Spec, m: &ModelArgs, fetch_default: bool) -> Result<Arc<dyn Model>> {
    Ok(spec::load(spec, &load_options(m, fetch_default)).await?)
}

/// The generator: the model of `--model`, with the `--rectifier` installed when given.
pub async fn generator(m: &ModelArgs, fetch_default: bool) -> Result<Arc<dyn Model>> {
    let model = load_model(&m.model, m, fetch_default).await?;
    Ok(match &m.rectifier {
        Some(path) => amend::rectify::apply::install(model, path, m.lambda)?,
        None => model,
    })
}

/// Load the critics' model, when `--critic-model` names one (its API at `--critic-base-url`,
/// else `--base-url`).
pub async fn load_critic_model(
    c: &CriticModelArgs,
    m: &ModelArgs,
    fetch_default: bool,
) -> Result<Option<Arc<dyn Model>>> {
    let Some(spec) = &c.critic_model else {
        return Ok(None);
    };
    let mut opts = load_options(m, fetch_default);
    if let Some(url) = &c.critic_base_url {
        opts.base_url = Some(url.clone());
    }
    Ok(Some(spec::load(spec, &opts).await?))
}

/// A trace writer at `path`, or at `traces/RUN_ID.jsonl`.
pub fn trace_writer(path: Option<&Path>) -> Result<Arc<Writer>> {
    let w = match path {
        Some(p) => Writer::create(p, &trace::new_run_id())?,
        None => Writer::in_dir(Path::new("traces"))?,
    };
    Ok(Arc::new(w))
}

/// A strategy context from the flags: the model (and the critics' model), the prompts, a new
/// trace, and prefix reuse as `--no-prefix-reuse` says. The caller adds the rest.
pub async fn context(
    m: &ModelArgs,
    critic: Option<&CriticModelArgs>,
    prompts: Option<&Path>,
    trace: Option<&Path>,
    fetch_default: bool,
) -> Result<Context> {
    let prompts = Arc::new(Prompts::load(prompts)?);
    let writer = trace_writer(trace)?;
    let model = generator(m, fetch_default).await?;
    let mut cx = Context::new(model, prompts)
        .with_trace(writer)
        .with_prefix_reuse(!m.no_prefix_reuse);
    if let Some(c) = critic {
        if let Some(cm) = load_critic_model(c, m, fetch_default).await? {
            cx = cx.with_critic_model(cm);
        }
    }
    Ok(cx)
}

/// `text` with every library option name in backticks that this CLI has a flag for
/// (`` `max_calls` ``) written as the flag (`` `--max-calls` ``).
pub fn speak(text: &str) -> String {
    let mut flags: Vec<String> = Vec::new();
    collect_flags(&Cli::command(), &mut flags);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('`') {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let inner_and_rest = after.get(1..).unwrap_or_default();
        match inner_and_rest.find('`') {
            Some(end) => {
                let inner = inner_and_rest.get(..end).unwrap_or_default();
                let flag = inner.replace('_', "-");
                if !inner.is_empty()
                    && inner.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    && flags.contains(&flag)
                {
                    out.push_str(&format!("`--{flag}`"));
                } else {
                    out.push('`');
                    out.push_str(inner);
                    out.push('`');
                }
                rest = inner_and_rest.get(end + 1..).unwrap_or_default();
            }
            None => {
                out.push_str(after);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn collect_flags(cmd: &clap::Command, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if let Some(l) = a.get_long() {
            if !out.iter().any(|f| f == l) {
                out.push(l.to_string());
            }
        }
    }
    for sub in cmd.get_subcommands() {
        collect_flags(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::speak;

    #[test]
    fn option_names_become_flags() {
        assert_eq!(
            speak("`max_calls` reached; `critic` is needed (e.g. `arith`)"),
            "`--max-calls` reached; `--critic` is needed (e.g. `arith`)"
        );
        assert_eq!(speak("a `b"), "a `b");
        assert_eq!(
            speak("`skip_bad` and `base_url`"),
            "`--skip-bad` and `--base-url`"
        );
    }
}
