//! Training on planted rules; the fusion's invariants.

use super::*;
use proptest::prelude::*;

/// Positions whose gold token is the pilot's second choice exactly when hidden[0] > 0.
fn planted(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n)
        .map(|i| {
            let mut hidden: Vec<f32> = (0..6)
                .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) as f32 * 2.0 - 1.0)
                .collect();
            hidden[5] += 10.0; // an offset the standardisation removes
            let gold_at = if hidden[0] > 0.0 { 1 } else { 0 };
            let p = vec![0.5f32, 0.3, 0.1, 0.05];
            Example {
                item: format!("item-{}", i / 10),
                p_gold: p[gold_at],
                hidden,
                p,
                ids: vec![1, 2, 3, 4],
                gold_at: Some(gold_at),
                result: i % 3 == 0,
            }
        })
        .collect()
}

fn opts(use_hidden: bool) -> TrainOptions {
    TrainOptions {
        k: 4,
        width: 16,
        epochs: 30,
        lr: 0.01,
        batch: 32,
        seed: 5,
        use_hidden,
        dev_share: 0.2,
        weight_decay: 0.0,
        located: false,
        objective: Objective::Rmse,
        token_bias: false,
        scope: Scope::All,
    }
}

#[test]
fn a_rectifier_for_results_learns_there_and_leaves_every_other_position_alone() {
    let all = planted(2000, 1);
    let (dev, train_set): (Vec<Example>, Vec<Example>) =
        all.into_iter().partition(|e| is_dev(&e.item, 0.2, 5));
    let scoped = TrainOptions {
        scope: Scope::Results,
        ..opts(true)
    };
    let t = train(&train_set, &dev, scoped, |_, _, _| {});
    assert_eq!(t.scope, Scope::Results);
    assert!(t.lambda > 0.0);
    let test = planted(500, 2);
    let digits = evaluate(&t, t.lambda, &test, 1)
        .result_digits
        .expect("result digits measured");
    assert!(digits.top1_after > digits.top1_before + 0.3, "{digits:?}");
    let others: Vec<Example> = test.into_iter().filter(|e| !e.result).collect();
    let m = evaluate(&t, t.lambda, &others, 1);
    assert!(m.tokens > 0 && m.result_digits.is_none());
    assert!((m.nll_after - m.nll_before).abs() < 1e-9, "{m:?}");
    assert_eq!(m.top1_after, m.top1_before);
}

#[test]
fn the_development_split_takes_about_its_share_of_similar_ids() {
    let dev = (0..1000)
        .filter(|i| is_dev(&format!("tf:gsm8k-train:{i}"), 0.1, 2026))
        .count();
    assert!((60..=140).contains(&dev), "{dev} of 1000");
}

#[test]
fn the_hidden_state_lets_it_learn_a_planted_rule_and_lambda_zero_changes_nothing() {
    let all = planted(2000, 1);
    let (dev, train_set): (Vec<Example>, Vec<Example>) =
        all.into_iter().partition(|e| is_dev(&e.item, 0.2, 5));
    assert!(!dev.is_empty() && !train_set.is_empty());
    let mut epochs = 0;
    let t = train(&train_set, &dev, opts(true), |_, _, _| epochs += 1);
    assert_eq!(epochs, 30);
    let test = planted(500, 2);
    let m = evaluate(&t, t.lambda, &test, 1);
    assert!(t.lambda > 0.0);
    assert!(m.nll_change < -0.2, "{m:?}");
    assert!(m.nll_change_hi < 0.0, "{m:?}");
    assert!(m.top1_after > m.top1_before + 0.3, "{m:?}");
    // The result digits are measured on their own too.
    let digits = m.result_digits.as_deref().expect("result digits measured");
    assert_eq!(
        digits.tokens,
        test.iter().filter(|e| e.result).count() as u64
    );
    assert!(digits.result_digits.is_none());
    // Without the hidden state the rule cannot be seen.
    let b = train(&train_set, &dev, opts(false), |_, _, _| {});
    let mb = evaluate(&b, b.lambda, &test, 1);
    assert!(
        mb.nll_after > m.nll_after + 0.1,
        "bias-only {mb:?} vs {m:?}"
    );
    // λ = 0 is no correction.
    let zero = evaluate(&t, 0.0, &test, 1);
    assert!(zero.nll_change.abs() < 1e-6, "{zero:?}");
    assert_eq!(zero.top1_after, zero.top1_before);
    // Deterministic for a seed.
    let again = train(&train_set, &dev, opts(true), |_, _, _| {});
    assert_eq!(again.net, t.net);
}

#[test]
fn the_cross_entropy_and_logit_objectives_learn_the_planted_rule_too() {
    let all = planted(2000, 1);
    let (dev, train_set): (Vec<Example>, Vec<Example>) =
        all.into_iter().partition(|e| is_dev(&e.item, 0.2, 5));
    let test = planted(500, 2);
    for objective in [Objective::CrossEntropy, Objective::Logit] {
        let t = train(
            &train_set,
            &dev,
            TrainOptions {
                objective,
                ..opts(true)
            },
            |_, _, _| {},
        );
        assert_eq!(t.objective, objective);
        let m = evaluate(&t, t.lambda, &test, 1);
        assert!(t.lambda > 0.0, "{objective:?}");
        assert!(
            m.nll_change < -0.2 && m.nll_change_hi < 0.0,
            "{objective:?}: {m:?}"
        );
        assert!(m.top1_after > m.top1_before + 0.3, "{objective:?}: {m:?}");
        let zero = evaluate(&t, 0.0, &test, 1);
        assert!(zero.nll_change.abs() < 1e-6, "{objective:?}: {zero:?}");
    }
}

/// Positions where token 7, wherever the pilot ranks it, is the gold token more often than
/// the pilot thinks: a rule about a token, not about the hidden state.
fn planted_token(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n)
        .map(|i| {
            let slot = (rng.next_u64() % 4) as usize;
            let mut ids = vec![20, 21, 22, 23];
            ids[slot] = 7;
            let p = vec![0.4f32, 0.3, 0.2, 0.05];
            let gold_at = if rng.next_u64() % 10 < 7 { slot } else { 0 };
            Example {
                item: format!("item-{}", i / 10),
                hidden: vec![0.0; 6],
                p_gold: p[gold_at],
                p,
                ids,
                gold_at: Some(gold_at),
                result: false,
            }
        })
        .collect()
}

#[test]
fn a_token_bias_learns_a_planted_token_rule_the_bias_only_network_cannot() {
    let all = planted_token(2000, 3);
    let (dev, train_set): (Vec<Example>, Vec<Example>) =
        all.into_iter().partition(|e| is_dev(&e.item, 0.2, 5));
    let test = planted_token(500, 4);
    let with = |token_bias| {
        let t = train(
            &train_set,
            &dev,
            TrainOptions {
                objective: Objective::Logit,
                token_bias,
                ..opts(false)
            },
            |_, _, _| {},
        );
        let m = evaluate(&t, t.lambda, &test, 1);
        (t, m)
    };
    let (t, m) = with(true);
    let (plain, mp) = with(false);
    assert!(plain.token_bias.is_empty());
    assert!(
        t.token_bias.get(&7).is_some_and(|b| *b > 0.5),
        "{:?}",
        t.token_bias
    );
    assert!(m.nll_after < mp.nll_after - 0.1, "{m:?} vs {mp:?}");
    assert!(m.top1_after > mp.top1_after + 0.2, "{m:?} vs {mp:?}");
    // The file round-trips the bias and applies it the same way.
    let json = serde_json::to_string(&t).unwrap();
    let back: Trained = serde_json::from_str(&json).unwrap();
    assert_eq!(back.token_bias, t.token_bias);
    let e = &test[0];
    assert_eq!(
        back.corrections(&e.hidden, &e.p, &e.ids),
        t.corrections(&e.hidden, &e.p, &e.ids)
    );
}

#[test]
fn weight_decay_shrinks_the_weights() {
    let all = planted(600, 3);
    let (dev, train_set): (Vec<Example>, Vec<Example>) =
        all.into_iter().partition(|e| is_dev(&e.item, 0.2, 5));
    let norm = |t: &Trained| t.net.w1.iter().chain(&t.net.w2).map(|w| w * w).sum::<f32>();
    let plain = train(&train_set, &dev, opts(true), |_, _, _| {});
    let decayed = train(
        &train_set,
        &dev,
        TrainOptions {
            weight_decay: 0.5,
            ..opts(true)
        },
        |_, _, _| {},
    );
    assert!(
        norm(&decayed) < norm(&plain),
        "{} vs {}",
        norm(&decayed),
        norm(&plain)
    );
}

proptest! {
    #[test]
    fn the_fused_distribution_sums_to_one(
        raw in proptest::collection::vec(0.0f32..1.0, 1..16),
        y in proptest::collection::vec(-2.0f32..2.0, 16),
        lambda in 0.0f32..3.0,
    ) {
        let total: f32 = raw.iter().sum::<f32>() * 1.25 + 1e-3;
        let p: Vec<f32> = raw.iter().map(|r| r / total).collect();
        let rest = 1.0 - p.iter().sum::<f32>();
        for objective in [Objective::Rmse, Objective::Logit] {
            let (f, z) = objective.fuse(&p, &y[..p.len()], lambda);
            prop_assert!(f.iter().all(|x| *x > 0.0));
            let sum = (f.iter().sum::<f32>() + rest) / z;
            prop_assert!((sum - 1.0).abs() < 1e-5, "{:?}: {}", objective, sum);
        }
    }
}
