//! The two encodings a tar-split record uses: Go's CRC-64 (ISO) of file content and
//! standard base64 of raw bytes.

use crate::store::error::{Error, Result};

/// CRC-64 as Go's `hash/crc64` computes it with the ISO table (tar-split's file checksum):
/// reflected polynomial 0xD800000000000000, initial value and final xor all ones, the sum
/// written big-endian. Check value of `123456789`: `b90956c775a41001`.
#[derive(Clone)]
pub struct Crc64(u64);

/// Slicing-by-8 tables: `T[0]` is the byte-at-a-time table; `T[k][i]` is the CRC of byte `i`
/// followed by `k` zero bytes, so eight bytes are folded with eight lookups at once (about
/// 8x the speed of the byte loop, which was a quarter of a pull's CPU).
const CRC64_TABLES: [[u64; 256]; 8] = {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xD800_0000_0000_0000
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

impl Crc64 {
    pub fn new() -> Crc64 {
        Crc64(!0)
    }
    pub fn update(&mut self, data: &[u8]) {
        let t = &CRC64_TABLES;
        let mut c = self.0;
        let mut chunks = data.chunks_exact(8);
        for ch in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(ch);
            let x = c ^ u64::from_le_bytes(w);
            c = t[7][(x & 0xff) as usize]
                ^ t[6][((x >> 8) & 0xff) as usize]
                ^ t[5][((x >> 16) & 0xff) as usize]
                ^ t[4][((x >> 24) & 0xff) as usize]
                ^ t[3][((x >> 32) & 0xff) as usize]
                ^ t[2][((x >> 40) & 0xff) as usize]
                ^ t[1][((x >> 48) & 0xff) as usize]
                ^ t[0][(x >> 56) as usize];
        }
        for b in chunks.remainder() {
            c = t[0][((c as u8) ^ b) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    pub fn sum(&self) -> [u8; 8] {
        (!self.0).to_be_bytes()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Decode standard base64 (padding optional).
pub fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = B64
            .iter()
            .position(|x| *x == c)
            .ok_or_else(|| Error::invalid("corrupt base64 in tar-split record"))?
            as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_slicing_matches_the_byte_loop() {
        fn bytewise(data: &[u8]) -> [u8; 8] {
            let mut c = !0u64;
            for b in data {
                c = CRC64_TABLES[0][((c as u8) ^ b) as usize] ^ (c >> 8);
            }
            (!c).to_be_bytes()
        }
        let data: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 4096, 9999] {
            for split in [0, 1, 3, 8, len / 2] {
                let split = split.min(len);
                let mut c = Crc64::new();
                c.update(&data[..split]);
                c.update(&data[split..len]);
                assert_eq!(c.sum(), bytewise(&data[..len]), "len {len} split {split}");
            }
        }
        let mut c = Crc64::new();
        c.update(b"123456789");
        assert_eq!(c.sum(), 0xb90956c775a41001u64.to_be_bytes());
    }
}
