//! Token-level records: the hidden state and logits at a wrong token, kept for the logit
//! rectifier that will be trained from the log. Stored in their own tree (`v1/tokens`) under
//! key `MISTAKE_ID, 0, POSITION (u32 big-endian)`, value a small binary layout (format byte 1,
//! token id, then the hidden state and the logits as length-prefixed little-endian f32).

/// The model's state at one generated token of a mistaken attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// The mistake this token belongs to.
    pub mistake: String,
    /// Position of the token in the generated text.
    pub position: u32,
    /// The token id that was generated.
    pub token: i32,
    /// The final hidden state.
    pub hidden: Vec<f32>,
    /// The logits (possibly only a slice of the vocabulary, as the writer chooses).
    pub logits: Vec<f32>,
}

const FORMAT: u8 = 1;

impl TokenRecord {
    /// The record's key.
    pub fn key(&self) -> Vec<u8> {
        let mut k = self.mistake.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&self.position.to_be_bytes());
        k
    }

    /// The record's value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(13 + 4 * (self.hidden.len() + self.logits.len()));
        v.push(FORMAT);
        v.extend_from_slice(&self.token.to_le_bytes());
        for xs in [&self.hidden, &self.logits] {
            v.extend_from_slice(&(xs.len() as u32).to_le_bytes());
            for x in xs.iter() {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        v
    }

    /// Decode a key and value written by [`TokenRecord::key`] / [`TokenRecord::encode`].
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
        if r.take(1)? != [FORMAT] {
            return Err("unknown token record format".into());
        }
        let token = i32::from_le_bytes(r.word()?);
        let hidden = r.floats()?;
        let logits = r.floats()?;
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(Self {
            mistake,
            position,
            token,
            hidden,
            logits,
        })
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn token_records_round_trip(
            id in "[a-f0-9-]{1,36}",
            position in any::<u32>(),
            token in any::<i32>(),
            hidden in proptest::collection::vec(-1e6f32..1e6, 0..40),
            logits in proptest::collection::vec(-1e6f32..1e6, 0..40),
        ) {
            let r = TokenRecord { mistake: id, position, token, hidden, logits };
            prop_assert_eq!(TokenRecord::decode(&r.key(), &r.encode()), Ok(r.clone()));
            let enc = r.encode();
            prop_assert!(TokenRecord::decode(&r.key(), &enc[..enc.len() - 1]).is_err());
        }
    }
}
