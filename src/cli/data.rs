//! `amend data`: make evaluation data (planted errors, synthetic problems, ladder levels,
//! orders) and measure a dataset's chance floor.

use anyhow::{Context as _, Result};
use serde_json::json;

use super::DataAction;

/// Run an `amend data` subcommand.
pub fn run(action: DataAction) -> Result<()> {
    match action {
        DataAction::Inject {
            data,
            out,
            limit,
            seed,
        } => {
            let loaded = amend::data::load(amend::data::Task::Gsm8k, &data, false)?;
            let mut made = amend::data::inject::inject(&loaded.items, seed);
            if let Some(n) = limit {
                made.truncate(n);
            }
            let errors = made.iter().filter(|r| r.label >= 0).count();
            std::fs::write(&out, serde_json::to_vec_pretty(&made)?)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {} items ({errors} with a planted error, {} untouched) to {}",
                made.len(),
                made.len() - errors,
                out.display()
            );
        }
        DataAction::Floor { data, limit, out } => {
            let loaded = amend::data::load(amend::data::Task::Gsm8k, &data, false)?;
            let items = amend::data::select(loaded.items, None, 0, limit);
            let floors: Vec<f64> = items
                .iter()
                .filter_map(|i| match &i.gold {
                    amend::data::Gold::Answer { answer, .. } => {
                        amend::eval::metrics::item_floor(&i.question, answer)
                    }
                    _ => None,
                })
                .collect();
            let floor = floors.iter().sum::<f64>() / floors.len().max(1) as f64;
            if out.json {
                println!("{}", json!({"items": floors.len(), "chance_floor": floor}));
            } else {
                println!(
                    "{}: chance floor {:.2}% over {} items",
                    data.display(),
                    floor * 100.0,
                    floors.len()
                );
            }
        }
        DataAction::Orders { n, seed, out } => {
            let mut text = String::new();
            for o in amend::data::orders::generate(n, seed) {
                text.push_str(&serde_json::to_string(&o)?);
                text.push('\n');
            }
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {n} orders (seed {seed}) to {}", out.display());
        }
        DataAction::Synth {
            steps,
            level,
            n,
            seed,
            out,
        } => {
            let (problems, what) = match level.and_then(amend::data::ladder::Level::new) {
                Some(l) => (
                    amend::data::ladder::generate(n, &l, seed),
                    format!("level {}", l.level),
                ),
                None => {
                    let (lo, hi) = super::eval::parse_steps(&steps)?;
                    (
                        amend::data::synth::generate(n, lo, hi, seed),
                        format!("{lo}..{hi} steps"),
                    )
                }
            };
            let mut text = String::new();
            for p in &problems {
                text.push_str(&serde_json::to_string(p)?);
                text.push('\n');
            }
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {n} problems ({what}, seed {seed}) to {}",
                out.display()
            );
        }
    }
    Ok(())
}
