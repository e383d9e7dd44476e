//! The two encodings a tar-split record uses: Go's CRC-64 (ISO) of file content and
//! standard base64 of raw bytes.

use crate::store::error::{Error, Result};

/// CRC-64 as Go's `hash/crc64` computes it with the ISO table (tar-split's file checksum):
/// reflected polynomial 0xD800000000000000, initial value and final xor all ones, the sum
/// written big-endian. Check value of `123456789`: `b90956c775a41001`.
#[derive(Clone)]
pub struct Crc64(u64);

const CRC64_TABLE: [u64; 256] = {
    let mut t = [0u64; 256];
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
        t[i] = c;
        i += 1;
    }
    t
};

impl Crc64 {
    pub fn new() -> Crc64 {
        Crc64(!0)
    }
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for b in data {
            c = CRC64_TABLE[((c as u8) ^ b) as usize] ^ (c >> 8);
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
