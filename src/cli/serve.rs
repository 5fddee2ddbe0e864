//! `amend serve`: build the server from the flags and the config file, then serve until
//! SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Args;

use super::common;
use super::ModelArgs;
use amend::mistakes::SledStore;
use amend::model::Spec;
use amend::serve::{self, App, Config, Relay};
use amend::Prompts;

/// `amend serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The server's TOML config (bind, keys, limits, defaults; see the README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (over the config's `bind`; default 127.0.0.1:8080).
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Directory of custom prompt templates.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Leave messages and answers out of the request traces (and record no mistakes, which
    /// hold them).
    #[arg(long)]
    pub redact: bool,
    /// Mistakes store the requests record into (over the config's `mistakes`; default
    /// $AMEND_HOME/mistakes). Other processes read it through the server while it runs.
    #[arg(long, env = "AMEND_MISTAKES")]
    pub mistakes: Option<PathBuf>,
    /// Record no mistakes (over the config's `record_mistakes`).
    #[arg(long)]
    pub no_mistakes: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Serve until a shutdown signal.
pub async fn run(a: ServeArgs) -> Result<()> {
    let mut config = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(b) = a.bind {
        config.bind = b;
    }
    config.redact |= a.redact;
    if let Some(p) = a.mistakes {
        config.mistakes = Some(p);
    }
    if a.no_mistakes {
        config.record_mistakes = false;
    }
    if a.model.no_prefix_reuse {
        config.prefix_reuse = false;
    }
    let model = common::generator(&a.model, true).await?;
    let relay = match &a.model.model {
        Spec::OpenAi { model } => {
            let base = a
                .model
                .base_url
                .as_deref()
                .context("an openai: model needs --base-url")?;
            Some(Relay::new(
                base,
                model,
                std::env::var(&a.model.api_key_env).ok(),
            )?)
        }
        _ => None,
    };
    let name = serve::served_name(&a.model.model);
    let prompts = Arc::new(Prompts::load(a.prompts.as_deref())?);
    let bind = config.bind;
    let store = config.mistakes_path();
    let mut app = App::new(config, model, &name, relay, prompts)?;
    if let Some(path) = store {
        let s = SledStore::open(&path)?;
        app = app.with_mistakes(Arc::new(s), path);
    }
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "amend serve: http://{addr}/v1 (model {})",
        app.served().join(", ")
    );
    serve::run(app, listener, shutdown_signal()).await?;
    eprintln!("amend serve: stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
