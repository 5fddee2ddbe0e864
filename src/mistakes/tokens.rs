//! Token-level records: what the model predicted at one position of a text whose right
//! continuation is known, kept for the logit rectifier trained from the log (Transformer
//! Copilot's mistake log: the pilot's distribution and hidden state beside the gold token).
//!
//! Stored in their own tree (`v1/tokens`) under key `ID, 0, POSITION (u32 big-endian)`, where
//! `ID` is the mistake the record belongs to (or, for teacher-forced gold text, the id of the
//! collected item). The value is a small binary layout led by a format byte:
//! - format 1 (written by nothing so far, still read): token id, then the hidden state and
//!   the logits as length-prefixed little-endian f32;
//! - format 2: source byte, model key (length-prefixed UTF-8), gold token, gold logit, pilot
//!   token, log-normaliser (f32), the top-K as length-prefixed (id i32, logit f32) pairs, the
//!   hidden state as length-prefixed bf16 (round-to-nearest-even; |error| ≤ 2⁻⁸ of the value);
//! - format 3 (written now): format 2 followed by one flags byte (bit 0: the token is part of
//!   a computed result, the number written after `a op b =`).

/// Where a record's gold token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// A gold text pushed through teacher forcing (`amend rectify collect`).
    TeacherForced,
    /// The correction of a mistake a critic located (e.g. the true result of a false
    /// `a op b = c` claim).
    Located,
    /// A gold label of a dataset at a known position.
    GoldLabel,
}

impl TokenSource {
    fn byte(self) -> u8 {
        match self {
            Self::TeacherForced => 0,
            Self::Located => 1,
            Self::GoldLabel => 2,
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::TeacherForced),
            1 => Some(Self::Located),
            2 => Some(Self::GoldLabel),
            _ => None,
        }
    }
}

/// The model's prediction at one position, beside the right token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// The mistake (or collected item) this token belongs to.
    pub mistake: String,
    /// Position of the token in the continuation.
    pub position: u32,
    /// Where the gold token comes from (`None`: a format-1 record).
    pub source: Option<TokenSource>,
    /// The model's identity key (empty in format 1).
    pub model: String,
    /// The right token (`None` in format 1).
    pub gold: Option<i32>,
    /// The right token's logit (`None` in format 1): its probability is
    /// `exp(gold_logit − log_normaliser)` whether or not it is in `top`.
    pub gold_logit: Option<f32>,
    /// The token the model chose (its greedy choice; format 1: the generated token).
    pub token: i32,
    /// `log Σ exp(logit)` over the vocabulary (`None` in format 1).
    pub log_normaliser: Option<f32>,
    /// The model's top-K candidates (id, logit), most likely first (empty in format 1).
    pub top: Vec<(i32, f32)>,
    /// The final hidden state (bf16 precision when read back from format 2).
    pub hidden: Vec<f32>,
    /// Logits as a format-1 writer chose them (empty in formats 2 and 3).
    pub logits: Vec<f32>,
    /// The token is part of a computed result, the number after `a op b =` (`None`: not
    /// known, formats 1 and 2).
    pub result: Option<bool>,
}

const FORMAT_1: u8 = 1;
const FORMAT_2: u8 = 2;
const FORMAT_3: u8 = 3;

/// `x` as bf16 bits, rounded to nearest even (NaN stays NaN).
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 of bf16 bits.
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

impl TokenRecord {
    /// The record's key.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.mistake.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&self.position.to_be_bytes());
        k
    }

    /// The record's value, in format 3 (a record without `source` is written in format 1,
    /// as it was read).
    pub fn encode(&self) -> Vec<u8> {
        let Some(source) = self.source else {
            return self.encode_v1();
        };
        let mut v =
            Vec::with_capacity(32 + self.model.len() + 8 * self.top.len() + 2 * self.hidden.len());
        v.push(FORMAT_3);
        v.push(source.byte());
        v.extend_from_slice(&(self.model.len() as u32).to_le_bytes());
        v.extend_from_slice(self.model.as_bytes());
        v.extend_from_slice(&self.gold.unwrap_or(-1).to_le_bytes());
        v.extend_from_slice(&self.gold_logit.unwrap_or(f32::NAN).to_le_bytes());
        v.extend_from_slice(&self.token.to_le_bytes());
        v.extend_from_slice(&self.log_normaliser.unwrap_or(f32::NAN).to_le_bytes());
        v.extend_from_slice(&(self.top.len() as u32).to_le_bytes());
        for (id, l) in &self.top {
            v.extend_from_slice(&id.to_le_bytes());
            v.extend_from_slice(&l.to_le_bytes());
        }
        v.extend_from_slice(&(self.hidden.len() as u32).to_le_bytes());
        for x in &self.hidden {
            v.extend_from_slice(&to_bf16(*x).to_le_bytes());
        }
        v.push(u8::from(self.result == Some(true)));
        v
    }

    fn encode_v1(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(13 + 4 * (self.hidden.len() + self.logits.len()));
        v.push(FORMAT_1);
        v.extend_from_slice(&self.token.to_le_bytes());
        for xs in [&self.hidden, &self.logits] {
            v.extend_from_slice(&(xs.len() as u32).to_le_bytes());
            for x in xs.iter() {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        v
    }

    /// Decode a key and value written by [`TokenRecord::key`] / [`TokenRecord::encode`]
    /// (either format).
    ///
    /// # Errors
    /// A message saying what is wrong with the bytes.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, String> {
        let split = key
            .len()
            .checked_sub(5)
            .filter(|&i| key.get(i) == Some(&0))
            .ok_or("bad key")?;
        let (id, pos) = key.split_at(split);
        let mistake = String::from_utf8(id.to_vec()).map_err(|e| e.to_string())?;
        let position = u32::from_be_bytes(
            pos.get(1..)
                .unwrap_or_default()
                .try_into()
                .map_err(|_| "bad key position")?,
        );
        let mut r = Reader(value);
        let rec = match r.take(1)? {
            [FORMAT_1] => {
                let token = i32::from_le_bytes(r.word()?);
                let hidden = r.floats()?;
                let logits = r.floats()?;
                Self {
                    mistake,
                    position,
                    source: None,
                    model: String::new(),
                    gold: None,
                    gold_logit: None,
                    token,
                    log_normaliser: None,
                    top: Vec::new(),
                    hidden,
                    logits,
                    result: None,
                }
            }
            [f @ (FORMAT_2 | FORMAT_3)] => {
                let format = *f;
                let source = r
                    .take(1)?
                    .first()
                    .copied()
                    .and_then(TokenSource::from_byte)
                    .ok_or("unknown token record source")?;
                let n = u32::from_le_bytes(r.word()?) as usize;
                let model = String::from_utf8(r.take(n)?.to_vec()).map_err(|e| e.to_string())?;
                let gold = i32::from_le_bytes(r.word()?);
                let gold_logit = f32::from_le_bytes(r.word()?);
                let token = i32::from_le_bytes(r.word()?);
                let lse = f32::from_le_bytes(r.word()?);
                let k = u32::from_le_bytes(r.word()?) as usize;
                let mut top = Vec::with_capacity(k.min(4096));
                for _ in 0..k {
                    top.push((i32::from_le_bytes(r.word()?), f32::from_le_bytes(r.word()?)));
                }
                let h = u32::from_le_bytes(r.word()?) as usize;
                let bytes = r.take(h.checked_mul(2).ok_or("bad length")?)?;
                let hidden = bytes
                    .chunks_exact(2)
                    .filter_map(|c| <[u8; 2]>::try_from(c).ok())
                    .map(|c| from_bf16(u16::from_le_bytes(c)))
                    .collect();
                let result = match format {
                    FORMAT_3 => Some(r.take(1)?.first().is_some_and(|b| b & 1 == 1)),
                    _ => None,
                };
                Self {
                    mistake,
                    position,
                    source: Some(source),
                    model,
                    gold: (gold >= 0).then_some(gold),
                    gold_logit: (!gold_logit.is_nan()).then_some(gold_logit),
                    token,
                    log_normaliser: (!lse.is_nan()).then_some(lse),
                    top,
                    hidden,
                    logits: Vec::new(),
                    result,
                }
            }
            _ => return Err("unknown token record format".into()),
        };
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(rec)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated token record".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn word(&mut self) -> Result<[u8; 4], String> {
        self.take(4)?
            .try_into()
            .map_err(|_| "truncated token record".to_string())
    }
    fn floats(&mut self) -> Result<Vec<f32>, String> {
        let n = u32::from_le_bytes(self.word()?) as usize;
        let bytes = self.take(n.checked_mul(4).ok_or("bad length")?)?;
        Ok(bytes
            .chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .map(f32::from_le_bytes)
            .collect())
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
