//! `report.md` and `report.html` of a run (tera), with inline SVG plots of accuracy per turn
//! and of cost, and the items worth a look (wrong, or changed by the strategy): in
//! `report.html` each expands in place to its question, attempts and located mistakes, and
//! both reports link each to its trace when the trace file exists.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tera::{Tera, Value};

use super::metrics::{ItemResult, Summary, TurnAccuracy};
use super::{Config, EvalError};

const MD: &str = include_str!("../../templates/report.md.tera");
const HTML: &str = include_str!("../../templates/report.html.tera");

#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    gold: &'a str,
    got: String,
    right: bool,
    changed: bool,
    error: Option<&'a str>,
    link: Option<String>,
    question: Option<&'a str>,
    attempts: Vec<(&'a str, String)>,
    located: &'a [crate::run::Located],
    budget_stop: Option<&'a str>,
}

#[derive(Serialize)]
struct ReportCx<'a> {
    config: &'a Config,
    s: &'a Summary,
    listed: Vec<Listed<'a>>,
    wrong: usize,
    missing_traces: usize,
    turns_svg: String,
    cost_svg: String,
    critic_run: bool,
    has_prior: bool,
    verdict: &'static str,
    /// `null` rather than missing when there is none, for the template's `is number` test.
    chance_floor: Option<f64>,
}

/// `pct(v=x)`: a share as a percentage, "n/a" when missing.
fn pct(args: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(match args.get("v").and_then(Value::as_f64) {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "n/a".into(),
    }))
}

/// `ci(v=interval)`: a 95% interval as `[lo%, hi%]`, empty when missing.
fn ci(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let b = |k: &str| args.get("v").and_then(|v| v.get(k)).and_then(Value::as_f64);
    Ok(Value::String(match (b("lo"), b("hi")) {
        (Some(lo), Some(hi)) => format!("[{:.1}%, {:.1}%]", lo * 100.0, hi * 100.0),
        _ => String::new(),
    }))
}

/// `pval(v=p)`: a p-value to 3 places, `< 0.001` below that.
fn pval(args: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(match args.get("v").and_then(Value::as_f64) {
        Some(p) if p < 0.001 => "< 0.001".into(),
        Some(p) => format!("{p:.3}"),
        None => "n/a".into(),
    }))
}

/// `num(v=x, p=digits)`: a number rounded to `p` places, "n/a" when missing.
fn num(args: &HashMap<String, Value>) -> tera::Result<Value> {
    let places = args.get("p").and_then(Value::as_u64).unwrap_or(1) as usize;
    Ok(Value::String(match args.get("v").and_then(Value::as_f64) {
        Some(v) => format!("{v:.places$}"),
        None => "n/a".into(),
    }))
}

/// A link to an item's trace event relative to the output directory (`traces/RUN.jsonl#Ln`,
/// or `traces/RUN.jsonl.gz` once compressed), or `None` when neither file exists (runs made
/// before traces were kept with their results).
fn link(out: &Path, trace: &str) -> Option<String> {
    let (file, seq) = trace.rsplit_once('#').unwrap_or((trace, ""));
    let path = Path::new(file);
    let name = path.file_name()?.to_string_lossy().into_owned();
    let rel = match path.parent().and_then(|p| p.file_name()) {
        Some(dir) if dir == "traces" => format!("traces/{name}"),
        _ => path
            .strip_prefix(out)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| file.to_string()),
    };
    if out.join(&rel).is_file() {
        // Event `seq` n is on line n + 1 (the header is event 0, on line 1).
        return Some(match seq.parse::<u64>() {
            Ok(n) => format!("{rel}#L{}", n + 1),
            Err(_) => rel,
        });
    }
    let gz = format!("{rel}.gz");
    out.join(&gz).is_file().then_some(gz)
}

/// Line chart of m1 / p1 / majority accuracy per turn.
pub fn turns_svg(turns: &[TurnAccuracy]) -> String {
    let (w, h, pad) = (420.0, 220.0, 36.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{pad}" y="10" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        w - pad - 10.0,
        h - pad - 10.0
    );
    for k in 0..=4 {
        let y = 10.0 + (h - pad - 10.0) * (1.0 - k as f64 / 4.0);
        let _ = write!(s, r#"<text x="2" y="{:.1}">{}%</text>"#, y + 4.0, k * 25);
    }
    let n = turns.len().max(1);
    let x = |i: usize| {
        pad + (w - pad - 10.0)
            * if n == 1 {
                0.5
            } else {
                i as f64 / (n - 1) as f64
            }
    };
    let y = |v: f64| 10.0 + (h - pad - 10.0) * (1.0 - v.clamp(0.0, 1.0));
    for (i, t) in turns.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}">t{}</text>"#,
            x(i) - 6.0,
            h - pad + 14.0,
            t.turn
        );
    }
    type Series<'a> = (&'a str, &'a str, fn(&TurnAccuracy) -> f64);
    let series: [Series; 3] = [
        ("m1", "#1f77b4", |t| t.m1),
        ("p1", "#2ca02c", |t| t.p1),
        ("majority", "#d62728", |t| t.majority),
    ];
    for (j, (name, color, f)) in series.iter().enumerate() {
        let pts: Vec<String> = turns
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{:.1},{:.1}", x(i), y(f(t))))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{color}"/>"#);
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{name}</text>"#,
            pad + 8.0 + 70.0 * j as f64,
            h - 6.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Bar chart of decoded prompt, reused prompt and generated tokens.
pub fn cost_svg(s: &Summary) -> String {
    let u = &s.usage;
    let bars = [
        (
            "prompt decoded",
            u.prompt_tokens.saturating_sub(u.reused_tokens),
            "#1f77b4",
        ),
        ("prompt reused", u.reused_tokens, "#aec7e8"),
        ("generated", u.generated_tokens, "#ff7f0e"),
    ];
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let mut out = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="420" height="110" font-size="11">"#,
    );
    for (i, (name, v, color)) in bars.iter().enumerate() {
        let y = 8.0 + 32.0 * i as f64;
        let len = 260.0 * *v as f64 / max;
        let _ = write!(out, r#"<text x="0" y="{:.1}">{name}</text>"#, y + 14.0);
        let _ = write!(
            out,
            r#"<rect x="100" y="{y:.1}" width="{len:.1}" height="20" fill="{color}"/>"#
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{v}</text>"#,
            104.0 + len,
            y + 14.0
        );
    }
    out.push_str("</svg>");
    out
}

/// Write `report.md` and `report.html` into the run's output directory.
///
/// # Errors
/// [`EvalError::Report`] / [`EvalError::Io`].
pub fn write(cfg: &Config, s: &Summary, results: &[ItemResult]) -> Result<(), EvalError> {
    let mut tera = Tera::default();
    tera.register_function("pct", pct);
    tera.register_function("num", num);
    tera.register_function("ci", ci);
    tera.register_function("pval", pval);
    tera.add_raw_templates(vec![("report.md", MD), ("report.html", HTML)])
        .map_err(|e| EvalError::Report(e.to_string()))?;
    let mut missing_traces = 0;
    let listed: Vec<Listed> = results
        .iter()
        .filter(|r| !r.correct_after || r.correct_before != r.correct_after)
        .map(|r| {
            let link = r.trace.as_deref().and_then(|t| link(&cfg.out, t));
            missing_traces += usize::from(r.trace.is_some() && link.is_none());
            Listed {
                id: &r.id,
                gold: &r.gold,
                got: r.final_answer.clone().unwrap_or_else(|| "(none)".into()),
                right: r.correct_after,
                changed: r.correct_before != r.correct_after,
                error: r.error.as_deref(),
                link,
                question: r.question.as_deref(),
                attempts: r
                    .attempts
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let a = r.answers.get(i).cloned().flatten();
                        (t.as_str(), a.unwrap_or_else(|| "(none)".into()))
                    })
                    .collect(),
                located: &r.located,
                budget_stop: r.budget_stop.as_deref(),
            }
        })
        .collect();
    let cx = ReportCx {
        config: cfg,
        s,
        wrong: results.iter().filter(|r| !r.correct_after).count(),
        listed,
        missing_traces,
        turns_svg: turns_svg(&s.accuracy_by_turn),
        cost_svg: cost_svg(s),
        critic_run: s.f1.is_some(),
        has_prior: s.by_prior.is_some(),
        verdict: s.verdict.words(),
        chance_floor: s.chance_floor,
    };
    let ctx = tera::Context::from_serialize(&cx).map_err(|e| EvalError::Report(e.to_string()))?;
    for (name, file) in [("report.md", "report.md"), ("report.html", "report.html")] {
        let text = tera.render(name, &ctx).map_err(|e| {
            let mut msg = e.to_string();
            if let Some(src) = std::error::Error::source(&e) {
                msg.push_str(&format!(": {src}"));
            }
            EvalError::Report(msg)
        })?;
        let path = cfg.out.join(file);
        std::fs::write(&path, text).map_err(|e| EvalError::Io {
            path,
            reason: e.to_string(),
        })?;
    }
    Ok(())
}
