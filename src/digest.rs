//! Content digests: the `sha256:<hex>` [`Digest`] newtype, chainID computation, and
//! hashing reader/writer adapters that digest a stream while it passes through.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A `sha256:<64 hex>` content digest (image IDs, diffIDs, chainIDs, blob digests).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse `sha256:<hex>` (or bare 64-char hex). Errors name the bad value.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!("invalid sha256 digest {s:?}"));
        }
        Ok(Digest(hex.to_string()))
    }

    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(hex(&Sha256::digest(bytes)))
    }

    /// The 64 hex characters, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, as `docker images` shows them.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// chainID(1) = diffID(1); chainID(n) = sha256("chainID(n-1) diffID(n)").
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The inner reader (to drain it).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
    /// Finish: the digest and the byte count.
    pub fn finish(self) -> (Digest, u64) {
        (Digest(hex(&self.hasher.finalize())), self.count)
    }
    /// Finish, keeping the inner reader.
    pub fn finish_with_inner(self) -> (R, Digest, u64) {
        (self.inner, Digest(hex(&self.hasher.finalize())), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Finish: the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest(hex(&self.hasher.finalize())), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let h = "a".repeat(64);
        assert_eq!(Digest::parse(&h).unwrap().hex(), h);
        assert_eq!(
            Digest::parse(&format!("sha256:{h}")).unwrap().to_string(),
            format!("sha256:{h}")
        );
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&"A".repeat(64)).is_err());
    }

    #[test]
    fn empty_sha() {
        assert_eq!(
            Digest::of(b"").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn chain_ids_match_fixture_readme() {
        // Values from the busybox fixture (computed by other tools).
        let d = |s: &str| Digest::parse(s).unwrap();
        let diffs = [
            d("77f9c4f6270660e09770cd214399192db7c1ec63e4d0cc2674881b042a5c3654"),
            d("9c9e164bf5585ff35e11df8c5f66fea805adf048fdefd252c0b465f08e1f0527"),
            d("6ea244e6ff1e378950430e1e780a33f4a926ed55dd0547867b76ce586fb474a5"),
            d("8874aa750cc414cb1242be7d810d1a0091256c22f3ed6edc4f8fe2c259e361d7"),
        ];
        let c = chain_ids(&diffs);
        assert_eq!(c[0], diffs[0]);
        assert_eq!(
            c[1].hex(),
            "971e6cc32f6badb3a3a93ed6ff809b4ec037f7fdcc63c94f48abbd5d4bafacae"
        );
        assert_eq!(
            c[2].hex(),
            "c44f9f72335d772258878273515f2ceb71a3a7eed81d5df0061dc84a8990b380"
        );
        assert_eq!(
            c[3].hex(),
            "49cfe09d5a3b2c9303fc3b6d974a7068605accba03e43700e514f3fa878f0553"
        );
    }

    #[test]
    fn hashing_reader_counts() {
        let mut r = HashingReader::new(&b"hello"[..]);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, 5);
        assert_eq!(d, Digest::of(b"hello"));
    }
}
