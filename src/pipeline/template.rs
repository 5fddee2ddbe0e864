//! Reading tera templates without rendering them.

/// The names a tera template reads: every identifier inside its `{{ }}` and `{% %}` blocks.
pub(super) fn references(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{']) {
        let after = rest.get(open + 1..).unwrap_or("");
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body_start = open + 2;
        let Some(len) = rest.get(body_start..).and_then(|b| b.find(close)) else {
            break;
        };
        let body = rest.get(body_start..body_start + len).unwrap_or("");
        let mut in_str = None;
        let mut word = String::new();
        let mut prev = ' ';
        for c in body.chars().chain(std::iter::once(' ')) {
            match in_str {
                Some(q) if c == q => in_str = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => in_str = Some(c),
                None if c.is_ascii_alphanumeric() || c == '_' => {
                    if word.is_empty() && prev == '.' {
                        word.push('.');
                    }
                    word.push(c);
                }
                None => {
                    if !word.is_empty()
                        && !word.starts_with('.')
                        && !word.starts_with(|d: char| d.is_ascii_digit())
                    {
                        out.push(std::mem::take(&mut word));
                    }
                    word.clear();
                }
            }
            prev = c;
        }
        rest = rest.get(body_start + len + 2..).unwrap_or("");
    }
    out
}
