//! Token replay for fair benchmarks: a recorder hook notes the token greedy decoding picks at
//! every step (the argmax of the logits it sees), and a player hook makes a later run pick the
//! same tokens, call by call, so two runs that differ only in cache use generate identical
//! text.

use std::sync::{Arc, Mutex};

use crate::model::{LogitsHook, TokenStep};

/// The tokens of each call, in call order.
#[derive(Default)]
pub(super) struct Tape {
    calls: Mutex<Vec<Vec<usize>>>,
    played: Mutex<(usize, usize)>,
}

impl Tape {
    pub(super) fn recorder(self: &Arc<Self>) -> Arc<dyn LogitsHook> {
        Arc::new(Recorder(self.clone()))
    }
    pub(super) fn player(self: &Arc<Self>) -> Arc<dyn LogitsHook> {
        Arc::new(Player(self.clone()))
    }
}

struct Recorder(Arc<Tape>);

impl LogitsHook for Recorder {
    fn apply(&self, step: &mut TokenStep<'_>) {
        let best = step
            .logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        if let Ok(mut calls) = self.0.calls.lock() {
            if step.index == 0 {
                calls.push(Vec::new());
            }
            if let Some(c) = calls.last_mut() {
                c.push(best);
            }
        }
    }
    fn wants_hidden(&self) -> bool {
        false
    }
}

struct Player(Arc<Tape>);

impl LogitsHook for Player {
    fn apply(&self, step: &mut TokenStep<'_>) {
        let (Ok(calls), Ok(mut at)) = (self.0.calls.lock(), self.0.played.lock()) else {
            return;
        };
        if step.index == 0 {
            *at = (at.0 + usize::from(at.1 > 0), 0);
        }
        at.1 = step.index + 1;
        if let Some(&tok) = calls.get(at.0).and_then(|c| c.get(step.index)) {
            if let Some(l) = step.logits.get_mut(tok) {
                *l = f32::MAX;
            }
        }
    }
    fn wants_hidden(&self) -> bool {
        false
    }
}
