//! The arithmetic reader shared by the `arith` and `ground` critics: tokens of arithmetic text
//! (numbers with thousands separators, decimals and currency; `+ - * / ^ x × · ÷ −`;
//! parentheses; LaTeX `\times`, `\cdot`, `\div` and math delimiters), an exact rational
//! parser, and the value of every operation in a text.

use crate::answer::Number;

/// A token of arithmetic text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok {
    Num(Number, u32),
    Op(char),
    Open,
    Close,
    Break,
}

/// The tokens of `s`.
pub(crate) fn tokenize(s: &str) -> Vec<Tok> {
    tokenize_spans(s).into_iter().map(|(t, _)| t).collect()
}

/// The tokens of `s`, each with the byte range of `s` it was read from.
pub(crate) fn tokenize_spans(s: &str) -> Vec<(Tok, std::ops::Range<usize>)> {
    let b: Vec<char> = s.chars().collect();
    // Byte offset of every char index (and of the end).
    let at: Vec<usize> = s
        .char_indices()
        .map(|(o, _)| o)
        .chain(std::iter::once(s.len()))
        .collect();
    // The char at index `k` ('\0' past the end) and its byte offset (the end past it).
    let ch = |k: usize| b.get(k).copied().unwrap_or('\0');
    let off = |k: usize| at.get(k).copied().unwrap_or(s.len());
    let mut out: Vec<(Tok, std::ops::Range<usize>)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = ch(i);
        if c.is_ascii_digit() {
            let mut j = i;
            let mut raw = String::new();
            while j < b.len() {
                if ch(j).is_ascii_digit() {
                    raw.push(ch(j));
                    j += 1;
                } else if ch(j) == ','
                    && j + 3 < b.len() + 1
                    && b.get(j + 1..j + 4)
                        .is_some_and(|d| d.iter().all(char::is_ascii_digit))
                    && !b.get(j + 4).is_some_and(char::is_ascii_digit)
                {
                    j += 1;
                } else {
                    break;
                }
            }
            let mut decimals = 0;
            if b.get(j) == Some(&'.') && b.get(j + 1).is_some_and(char::is_ascii_digit) {
                raw.push('.');
                j += 1;
                while j < b.len() && ch(j).is_ascii_digit() {
                    raw.push(ch(j));
                    decimals += 1;
                    j += 1;
                }
            }
            let tok = match Number::parse(&raw) {
                Some(n) => Tok::Num(n, decimals),
                None => Tok::Break,
            };
            out.push((tok, off(i)..off(j)));
            i = j;
            continue;
        }
        // LaTeX: `\times`, `\cdot` and `\div` are operators; `\(`, `\)`, `\[`, `\]` are
        // math delimiters (nothing); any other command ends an expression.
        if c == '\\' {
            let name: String = b
                .iter()
                .skip(i + 1)
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let len = name.chars().count();
            let tok = match name.as_str() {
                "times" | "cdot" => Some(Tok::Op('*')),
                "div" => Some(Tok::Op('/')),
                "" if matches!(ch(i + 1), '(' | ')' | '[' | ']') => {
                    i += 2;
                    continue;
                }
                _ => Some(Tok::Break),
            };
            if let Some(tok) = tok {
                out.push((tok, off(i)..off(i + 1 + len)));
            }
            i += 1 + len;
            continue;
        }
        let prev_operand = matches!(out.last(), Some((Tok::Num(..) | Tok::Close, _)));
        let next_operand = b
            .iter()
            .skip(i + 1)
            .find(|c| !c.is_whitespace())
            .is_some_and(|c| c.is_ascii_digit() || *c == '(');
        let tok = match c {
            '+' | '-' | '*' | '/' | '^' => Some(Tok::Op(c)),
            '×' | '·' => Some(Tok::Op('*')),
            '÷' => Some(Tok::Op('/')),
            '−' => Some(Tok::Op('-')),
            'x' | 'X' if prev_operand && next_operand => Some(Tok::Op('*')),
            '(' => Some(Tok::Open),
            ')' => Some(Tok::Close),
            '$' | '€' | '£' => None,
            c if c.is_whitespace() => None,
            _ => Some(Tok::Break),
        };
        if let Some(tok) = tok {
            out.push((tok, off(i)..off(i + 1)));
        }
        i += 1;
    }
    out
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    ops: usize,
    /// The value of every operation, in evaluation order.
    partials: Vec<Number>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.toks.get(self.pos).copied()
    }
    fn expr(&mut self) -> Option<Number> {
        let mut v = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek() {
            self.pos += 1;
            self.ops += 1;
            let r = self.term()?;
            v = if op == '+' {
                add(v, r)?
            } else {
                add(v, neg(r)?)?
            };
            self.partials.push(v);
        }
        Some(v)
    }
    fn term(&mut self) -> Option<Number> {
        let mut v = self.power()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek() {
            self.pos += 1;
            self.ops += 1;
            let r = self.power()?;
            v = if op == '*' { mul(v, r)? } else { div(v, r)? };
            self.partials.push(v);
        }
        Some(v)
    }
    /// `a ^ b` for a whole exponent 0..=64 (right-associative).
    fn power(&mut self) -> Option<Number> {
        let base = self.factor()?;
        if self.peek() != Some(Tok::Op('^')) {
            return Some(base);
        }
        self.pos += 1;
        self.ops += 1;
        let e = self.power()?;
        if e.den != 1 || !(0..=64).contains(&e.num) {
            return None;
        }
        let mut v = Number::new(1, 1)?;
        for _ in 0..e.num {
            v = mul(v, base)?;
        }
        self.partials.push(v);
        Some(v)
    }
    fn factor(&mut self) -> Option<Number> {
        match self.peek()? {
            Tok::Op('-') => {
                self.pos += 1;
                neg(self.factor()?)
            }
            Tok::Op('+') => {
                self.pos += 1;
                self.factor()
            }
            Tok::Num(n, _) => {
                self.pos += 1;
                Some(n)
            }
            Tok::Open => {
                self.pos += 1;
                let v = self.expr()?;
                (self.peek() == Some(Tok::Close)).then(|| self.pos += 1)?;
                Some(v)
            }
            _ => None,
        }
    }
}

pub(crate) fn add(a: Number, b: Number) -> Option<Number> {
    Number::new(
        a.num
            .checked_mul(b.den)?
            .checked_add(b.num.checked_mul(a.den)?)?,
        a.den.checked_mul(b.den)?,
    )
}
pub(crate) fn sub(a: Number, b: Number) -> Option<Number> {
    add(a, neg(b)?)
}
/// `-a`.
fn neg(a: Number) -> Option<Number> {
    Number::new(a.num.checked_neg()?, a.den)
}
pub(crate) fn mul(a: Number, b: Number) -> Option<Number> {
    Number::new(a.num.checked_mul(b.num)?, a.den.checked_mul(b.den)?)
}
pub(crate) fn div(a: Number, b: Number) -> Option<Number> {
    Number::new(a.num.checked_mul(b.den)?, a.den.checked_mul(b.num)?)
}

/// A complete parse of `toks`: (value, operator count, decimals if a lone number).
pub(crate) fn parse_all(toks: &[Tok]) -> Option<(Number, usize, Option<u32>)> {
    parse_partials(toks).map(|(v, ops, dec, _)| (v, ops, dec))
}

/// [`parse_all`] and the value of every operation in it.
fn parse_partials(toks: &[Tok]) -> Option<(Number, usize, Option<u32>, Vec<Number>)> {
    let mut p = Parser {
        toks,
        pos: 0,
        ops: 0,
        partials: Vec::new(),
    };
    let v = p.expr()?;
    if p.pos != toks.len() {
        return None;
    }
    let decimals = match toks {
        [Tok::Num(_, d)] => Some(*d),
        [Tok::Op('-'), Tok::Num(_, d)] => Some(*d),
        _ => None,
    };
    Some((v, p.ops, decimals, p.partials))
}

/// The value of every operation in the arithmetic of `text` (each maximal run of tokens that
/// parses as an expression, read left to right: `20 - (12 + 4)` gives 16 and 4), each with
/// the byte offset where its expression ends: a value computed by an expression is known only
/// after it (`5 - 2 + 3` computes 3, but the literal 3 in it is not that result).
pub(crate) fn partials_ending(text: &str) -> Vec<(usize, Number)> {
    let spans = tokenize_spans(text);
    let mut out = Vec::new();
    // Expressions never cross a break (a word, `=`, punctuation).
    for run in spans.split(|(t, _)| *t == Tok::Break) {
        let toks: Vec<Tok> = run.iter().map(|(t, _)| *t).collect();
        let mut start = 0;
        while start < toks.len() {
            // The longest expression starting here.
            let found = (start + 1..=toks.len()).rev().find_map(|end| {
                let (_, ops, _, parts) = parse_partials(toks.get(start..end)?)?;
                (ops > 0).then_some((end, parts))
            });
            match found {
                Some((end, parts)) => {
                    let at = end
                        .checked_sub(1)
                        .and_then(|e| run.get(e))
                        .map_or(text.len(), |(_, r)| r.end);
                    out.extend(parts.into_iter().map(|v| (at, v)));
                    start = end;
                }
                None => start += 1,
            }
        }
    }
    out
}

/// The exact value of an arithmetic expression (`48/2`, `(3 + 4) * -2`), if it is one.
pub fn eval(expr: &str) -> Option<Number> {
    parse_all(&tokenize(expr)).map(|(v, _, _)| v)
}
