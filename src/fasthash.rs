//! A fast, non-cryptographic hasher for the in-memory tables (inode numbers, names):
//! the keys come from the kernel and the layers, not from an attacker who could choose
//! them to collide, so SipHash's cost buys nothing here.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing over 8-byte words (the FxHash scheme).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply leaves the low bits depending on the low input bits only (for names:
    /// their first bytes, alike in a big directory), while hash tables pick buckets by the
    /// low bits: fold the well-mixed high bits down (a 100k-entry listing spent 40% of its
    /// time in probe sequences and key compares without this).
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

/// `BuildHasher` for maps and sets.
pub type FastState = BuildHasherDefault<FastHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hash};

    fn h<T: Hash>(t: T) -> u64 {
        FastState::default().hash_one(t)
    }

    #[test]
    fn distinguishes_near_keys() {
        assert_ne!(h("a"), h("b"));
        assert_ne!(h("abcdefgh"), h("abcdefgi"));
        assert_ne!(h((1u64, 2u64)), h((2u64, 1u64)));
        // Trailing bytes of different lengths differ.
        assert_ne!(h([1u8, 0].as_slice()), h([1u8].as_slice()));
        let set: HashSet<u64> = (0..10_000u64).map(h).collect();
        assert_eq!(set.len(), 10_000);
    }

    /// Names alike in their first bytes (a big directory's) must spread over the low bits,
    /// which pick the bucket.
    #[test]
    fn names_with_one_prefix_spread_over_the_low_bits() {
        let low: HashSet<u64> = (0..4096u32)
            .map(|i| h(std::ffi::OsString::from(format!("f{i:06}"))) & 0xfff)
            .collect();
        assert!(low.len() > 2048, "{} of 4096 bucket values", low.len());
    }
}
