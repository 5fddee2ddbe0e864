//! The local backend: a GGUF model run in-process by llama.cpp (crate llama-cpp-2).
//!
//! A llama.cpp context is not `Sync` and borrows its model, so one worker thread owns both and
//! serves requests from a bounded queue; [`LocalModel`] is the cheap, cloneable handle to it.
//! The worker decodes concurrent requests together (continuous batching over `n_seq` slots,
//! each a KV sequence with its own prefix cache: see [`engine`]), decodes `n` samples of one
//! request as `n` slots over a prompt decoded once, and calls a [`crate::LogitsHook`] per
//! generated token of its own request with the final hidden state and the logits.
//!
//! The queue in front of the slots holds at most [`Options::queue`] requests; past that a
//! request fails at once with [`ModelError::Busy`], which is retryable (a server maps it to
//! 429 with `Retry-After`).

mod slot;
mod step;

mod context;
mod engine;
mod sample;
mod score;

pub(crate) use sample::Picker;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};

use async_trait::async_trait;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use serde::Serialize;
use tokio::sync::oneshot;

use super::{
    check_supported, Capabilities, KvLayout, Model, ModelError, ModelId, Request, Response,
    ScoreRequest, Scored,
};

/// Settings of a local model.
#[derive(Debug, Clone)]
pub struct Options {
    /// Initial context size in tokens (per sequence when the KV layout is split, else shared
    /// by all).
    pub n_ctx: u32,
    /// Largest context the worker may grow to on demand (0 = the model's training context).
    pub max_ctx: u32,
    /// Sequences decoded together (the most samples per request).
    pub n_seq: u32,
    /// CPU threads (0 = all cores).
    pub threads: u32,
    /// How the parallel sequences share the KV cache.
    pub kv: KvLayout,
    /// Requests that may wait for a slot; past that a request fails with
    /// [`ModelError::Busy`].
    pub queue: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            n_ctx: 2048,
            max_ctx: 8192,
            n_seq: 8,
            threads: 0,
            kv: KvLayout::Auto,
            queue: 64,
        }
    }
}

/// What the loaded GGUF file says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// The file.
    pub path: PathBuf,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Model name from the GGUF metadata, if any.
    pub general_name: Option<String>,
    /// Architecture from the GGUF metadata.
    pub architecture: Option<String>,
    /// Parameter count.
    pub n_params: u64,
    /// Vocabulary size.
    pub n_vocab: i32,
    /// Hidden size.
    pub n_embd: i32,
    /// Layers.
    pub n_layer: u32,
    /// Training context length.
    pub n_ctx_train: u32,
    /// The chat template stored in the file.
    pub chat_template: Option<String>,
    /// Bytes one KV cell takes (f16 keys and values of every layer).
    pub kv_bytes_per_cell: u64,
    /// KV cells of the context as loaded (all slots), before any growth.
    pub kv_cells: u64,
}

/// Handle to a local model's worker thread.
#[derive(Clone, Debug)]
pub struct LocalModel {
    id: ModelId,
    info: Arc<Info>,
    jobs: mpsc::SyncSender<engine::Job>,
    n_seq: u32,
    queue: usize,
}

/// The process-wide llama.cpp backend (it may be initialised only once).
pub(crate) fn backend() -> Result<&'static LlamaBackend, ModelError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ModelError::Decode(format!("llama.cpp backend init failed: {e}")))
}

/// Load a GGUF file with llama.cpp, with clear errors for missing and corrupt files.
pub(crate) fn load_gguf(path: &Path) -> Result<LlamaModel, ModelError> {
    if !path.is_file() {
        return Err(ModelError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map_err(|e| ModelError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        });
    if read.is_err() || &magic != b"GGUF" {
        return Err(ModelError::Load {
            path: path.to_path_buf(),
            reason: "not a GGUF file (bad magic bytes)".into(),
        });
    }
    let backend = backend()?;
    LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| {
        ModelError::Load {
            path: path.to_path_buf(),
            reason: format!("llama.cpp refused it ({e})"),
        }
    })
}

pub(crate) fn model_info(path: &Path, model: &LlamaModel) -> Info {
    Info {
        path: path.to_path_buf(),
        size_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        general_name: model.meta_val_str("general.name").ok(),
        architecture: model.meta_val_str("general.architecture").ok(),
        n_params: model.n_params(),
        n_vocab: model.n_vocab(),
        n_embd: model.n_embd(),
        n_layer: model.n_layer(),
        n_ctx_train: model.n_ctx_train(),
        chat_template: model
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok()),
        kv_bytes_per_cell: context::bytes_per_cell(model),
        kv_cells: 0,
    }
}

/// Threads to use: the option, else every core.
pub(crate) fn threads(opt: u32) -> i32 {
    if opt > 0 {
        return i32::try_from(opt).unwrap_or(i32::MAX);
    }
    std::thread::available_parallelism()
        .map(|n| n.get() as i32)
        .unwrap_or(2)
}

impl LocalModel {
    /// Load `path` on a new worker thread. The model's identity is the fingerprint of the
    /// file's content ([`super::fingerprint`]), computed on that thread before loading.
    ///
    /// # Errors
    /// [`ModelError::NotFound`] for a missing file, [`ModelError::Load`] for one llama.cpp
    /// cannot read, [`ModelError::Decode`] when no context can be created.
    pub async fn load(path: &Path, opts: Options) -> Result<Self, ModelError> {
        let (jobs, rx) = mpsc::sync_channel::<engine::Job>(opts.queue.max(1));
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(Info, ModelId), ModelError>>();
        let path = path.to_path_buf();
        let worker_opts = opts.clone();
        std::thread::Builder::new()
            .name("amend-llama".into())
            .spawn(move || worker(path, worker_opts, rx, ready_tx))
            .map_err(|e| ModelError::Decode(format!("cannot start the model thread: {e}")))?;
        let (info, id) = ready_rx.await.map_err(|_| ModelError::WorkerGone)??;
        Ok(Self {
            id,
            info: Arc::new(info),
            jobs,
            n_seq: opts.n_seq.max(1),
            queue: opts.queue.max(1),
        })
    }

    /// What the GGUF file says about itself.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Queue `job` for the worker: [`ModelError::Busy`] when the bounded queue is full.
    fn send(&self, job: engine::Job) -> Result<(), ModelError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => ModelError::Busy { queue: self.queue },
            mpsc::TrySendError::Disconnected(_) => ModelError::WorkerGone,
        })
    }
}

fn worker(
    path: PathBuf,
    opts: Options,
    jobs: mpsc::Receiver<engine::Job>,
    ready: oneshot::Sender<Result<(Info, ModelId), ModelError>>,
) {
    let id = match super::fingerprint(&path) {
        Ok(id) => id,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let model = match load_gguf(&path) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut info = model_info(&path, &model);
    let mut engine = match engine::Engine::new(&model, &opts) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    info.kv_cells = u64::from(engine.shape.total_cells());
    if ready.send(Ok((info, id))).is_err() {
        return;
    }
    serve(&mut engine, &jobs);
}

/// The worker's loop: admit waiting requests between decode steps (one at a time, in arrival
/// order: a request that cannot be admitted yet holds the line, and the queue behind it stays
/// bounded), and step the running ones.
fn serve(engine: &mut engine::Engine<'_>, jobs: &mpsc::Receiver<engine::Job>) {
    let mut waiting: Option<engine::Job> = None;
    loop {
        if waiting.is_none() {
            waiting = if engine.idle() {
                match jobs.recv() {
                    Ok(t) => Some(t),
                    Err(_) => return,
                }
            } else {
                jobs.try_recv().ok()
            };
        }
        while let Some(job) = waiting.take() {
            let task = match job {
                engine::Job::Generate(task) => task,
                engine::Job::Score(t) => {
                    if !t.reply.is_closed() && !engine.idle() {
                        waiting = Some(engine::Job::Score(t));
                        break;
                    }
                    if !t.reply.is_closed() {
                        let _ = t.reply.send(engine.score(&t.req));
                    }
                    waiting = jobs.try_recv().ok();
                    continue;
                }
            };
            if task.reply.is_closed() {
                waiting = jobs.try_recv().ok();
                continue;
            }
            if engine.readiness(&task.req) == engine::Readiness::Later {
                waiting = Some(engine::Job::Generate(task));
                break;
            }
            engine.admit(task);
            waiting = jobs.try_recv().ok();
        }
        if !engine.idle() {
            engine.step();
        }
    }
}

#[async_trait]
impl Model for LocalModel {
    fn id(&self) -> &ModelId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            logprobs: true,
            logits_hidden: true,
            kv_prefix_reuse: true,
            assistant_prefill: true,
            parallel_samples: true,
            max_samples_per_call: self.n_seq,
            raw_prompt: true,
            gbnf: true,
            json_schema: true,
            teacher_forcing: true,
        }
    }

    async fn generate(&self, request: Request) -> Result<Response, ModelError> {
        check_supported(&self.capabilities(), &self.id.key, &request)?;
        if request.n > self.n_seq {
            return Err(ModelError::InvalidRequest(format!(
                "n = {} exceeds the {} parallel sequences this model was loaded with",
                request.n, self.n_seq
            )));
        }
        let (tx, rx) = oneshot::channel();
        let task = engine::Task {
            req: Box::new(request),
            reply: tx,
            start: std::time::Instant::now(),
        };
        self.send(engine::Job::Generate(task))?;
        // Dropping this future drops `rx`: the worker sees the closed reply and frees the
        // request's slots at its next step.
        rx.await.map_err(|_| ModelError::WorkerGone)?
    }

    async fn score(&self, request: ScoreRequest) -> Result<Scored, ModelError> {
        if matches!(request.input, crate::model::Input::Chat(ref m) if m.is_empty()) {
            return Err(ModelError::InvalidRequest("the prompt is empty".into()));
        }
        let (tx, rx) = oneshot::channel();
        let task = score::ScoreTask {
            req: request,
            reply: tx,
        };
        self.send(engine::Job::Score(task))?;
        rx.await.map_err(|_| ModelError::WorkerGone)?
    }
}
