//! Splitting a solution into steps, shared by every critic and strategy.
//!
//! A solution is a list of steps: one per non-empty line, or, when the text numbers its steps
//! ("Step 1:", "Thought 2:"), one per numbered block (which may span several lines). [`join`]
//! is the inverse for texts in amend's own layout (one step per line).

/// Does this line start a numbered step ("Step 3:", "Thought 1.", "step 2 -")?
fn numbered(line: &str) -> bool {
    let t = line.trim_start();
    for prefix in ["Step ", "step ", "STEP ", "Thought ", "thought "] {
        if let Some(rest) = t.strip_prefix(prefix) {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 {
                let after = rest[digits..].trim_start();
                return after.starts_with([':', '.', ')', '-']);
            }
        }
    }
    false
}

/// Split `text` into steps.
pub fn split(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().filter(|l| numbered(l)).count() >= 2 {
        let mut steps: Vec<String> = Vec::new();
        for line in lines {
            if numbered(line) || steps.is_empty() {
                if !line.trim().is_empty() {
                    steps.push(line.trim_end().to_string());
                }
            } else if let Some(last) = steps.last_mut() {
                if !line.trim().is_empty() {
                    last.push('\n');
                    last.push_str(line.trim_end());
                }
            }
        }
        return steps;
    }
    lines
        .into_iter()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Join steps back into a solution text (one step per line).
pub fn join(steps: &[String]) -> String {
    steps.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lines_and_numbered_blocks() {
        assert_eq!(split("a = 1\n\nb = 2\n"), vec!["a = 1", "b = 2"]);
        let t = "Step 1: add\n3 + 4 = 7\nStep 2: double\n7 * 2 = 14";
        assert_eq!(
            split(t),
            vec!["Step 1: add\n3 + 4 = 7", "Step 2: double\n7 * 2 = 14"]
        );
        let t = "Intro line\nThought 1. x\nThought 2. y";
        assert_eq!(split(t), vec!["Intro line", "Thought 1. x", "Thought 2. y"]);
        // A lone "Step 1:" does not switch to block mode.
        assert_eq!(split("Step 1: a\nb"), vec!["Step 1: a", "b"]);
    }

    proptest! {
        #[test]
        fn join_then_split_round_trips(steps in proptest::collection::vec("[a-zA-Z0-9 +*/=().$-]{0,40}[a-zA-Z0-9=.]", 1..12)) {
            let steps: Vec<String> = steps.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && !numbered(s)).collect();
            prop_assert_eq!(split(&join(&steps)), steps);
        }

        #[test]
        fn numbered_round_trip(bodies in proptest::collection::vec("[a-z0-9 +=]{1,30}[a-z0-9]", 2..8)) {
            let steps: Vec<String> = bodies.iter().enumerate().map(|(i, b)| format!("Step {}: {b}", i + 1)).collect();
            prop_assert_eq!(split(&join(&steps)), steps);
        }

        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = split(&s);
        }
    }
}
