//! Token records: format 3 round-trips, formats 1 and 2 are still read, bf16 is close.

use super::*;
use proptest::prelude::*;

fn v3(id: String, position: u32, top: Vec<(i32, f32)>, hidden: Vec<f32>) -> TokenRecord {
    TokenRecord {
        mistake: id,
        position,
        source: Some(TokenSource::Located),
        model: "gguf-98362432".into(),
        gold: Some(17),
        gold_logit: Some(1.5),
        token: 4,
        log_normaliser: Some(3.25),
        top,
        hidden,
        logits: Vec::new(),
        result: Some(true),
    }
}

proptest! {
    #[test]
    fn format_1_records_are_still_read(
        id in "[a-f0-9-]{1,36}",
        position in any::<u32>(),
        token in any::<i32>(),
        hidden in proptest::collection::vec(-1e6f32..1e6, 0..40),
        logits in proptest::collection::vec(-1e6f32..1e6, 0..40),
    ) {
        let r = TokenRecord {
            mistake: id, position, source: None, model: String::new(), gold: None,
            gold_logit: None, token,
            log_normaliser: None, top: Vec::new(), hidden, logits, result: None,
        };
        let enc = r.encode();
        prop_assert_eq!(enc.first(), Some(&1));
        prop_assert_eq!(TokenRecord::decode(&r.key(), &enc), Ok(r.clone()));
        prop_assert!(TokenRecord::decode(&r.key(), &enc[..enc.len() - 1]).is_err());
    }

    #[test]
    fn format_3_records_round_trip_with_bf16_hidden_states(
        id in "[a-z0-9:-]{1,40}",
        position in any::<u32>(),
        top in proptest::collection::vec((0i32..50_000, -50f32..50.0), 0..16),
        hidden in proptest::collection::vec(-1e3f32..1e3, 0..64),
    ) {
        let r = v3(id, position, top, hidden.clone());
        let enc = r.encode();
        prop_assert_eq!(enc.first(), Some(&3));
        let back = TokenRecord::decode(&r.key(), &enc).map_err(TestCaseError::fail)?;
        for (a, b) in hidden.iter().zip(&back.hidden) {
            prop_assert!((a - b).abs() <= a.abs() / 256.0 + 1e-30, "{} vs {}", a, b);
        }
        prop_assert_eq!(back.hidden.len(), hidden.len());
        prop_assert_eq!(TokenRecord { hidden: hidden.clone(), ..back.clone() }, TokenRecord { hidden, ..r.clone() });
        prop_assert!(TokenRecord::decode(&r.key(), &enc[..enc.len() - 1]).is_err());
        // Format 2 is format 3 without the flags byte: still read, `result` unknown.
        let mut v2 = enc[..enc.len() - 1].to_vec();
        v2[0] = 2;
        let old = TokenRecord::decode(&r.key(), &v2).map_err(TestCaseError::fail)?;
        prop_assert_eq!(old, TokenRecord { result: None, ..back });
    }

    #[test]
    fn bf16_rounds_to_nearest(x in -1e30f32..1e30) {
        let y = from_bf16(to_bf16(x));
        prop_assert!((x - y).abs() <= x.abs() / 256.0, "{} -> {}", x, y);
    }
}

#[test]
fn unknown_formats_and_sources_are_errors() {
    let r = v3("m".into(), 1, vec![(3, 1.0)], vec![0.5]);
    let mut enc = r.encode();
    enc[0] = 9;
    assert!(TokenRecord::decode(&r.key(), &enc).is_err());
    let mut enc = r.encode();
    enc[1] = 7;
    assert!(TokenRecord::decode(&r.key(), &enc).is_err());
    assert_eq!(from_bf16(to_bf16(1.0)), 1.0);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
}
