//! Layer tars as dockerd sees them, written here without layerfs code: the tar bytes the
//! way two kinds of writer make them, and beside each the `tar-split.json.gz` lines dockerd
//! records for it (github.com/vbatts/tar-split's shape, as Go's encoding/json prints it).
//!
//! * [`Style::Go`]: Docker's own writer (pkg/archive over Go's archive/tar): no root entry,
//!   `etc/` for directories, USTAR headers (`ustar\0` `00`, octal fields NUL-terminated,
//!   checksum `%06o\0 `, empty user/group names), a long path split into prefix + name when
//!   it can be, else a PAX `path` record (`PaxHeaders.0/<base>`); xattrs as PAX
//!   `SCHILY.xattr.*`; the end is two zero blocks.
//! * [`Style::GnuDot`]: `tar -C rootfs -cf layer.tar .` (GNU tar, how many images not built
//!   by Docker start): `./`, `./etc/`, `./etc/passwd`, GNU headers (`ustar  \0`), names
//!   over 100 bytes in a `././@LongLink` record, zero-padded to a 10240-byte record.
//!
//! The record: a type 2 segment with every raw byte since the last entry (padding of the
//! previous content, PAX / long-name headers and their data, the header itself), then a
//! type 1 line for every header — `size` and the CRC-64 of the content only when there is
//! content, else no size and `"payload":null` — and the end blocks as a last segment; GNU
//! style adds the empty segment older tar-split versions write at the end.

/// Who wrote the layer tar.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Style {
    Go,
    GnuDot,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// Hard link to another path of the same layer.
    Hardlink(String),
    Fifo,
}

/// One entry; `path` has no leading `./` and no trailing `/` (`""` is the layer root).
#[derive(Clone, Debug)]
pub struct Ent {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

pub fn ent(path: &str, kind: Kind, mode: u32) -> Ent {
    Ent {
        path: path.as_bytes().to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: Vec::new(),
    }
}

/// A layer tar and the record dockerd keeps for it.
pub struct Written {
    pub tar: Vec<u8>,
    /// JSON lines, not yet gzip'd.
    pub record: String,
}

impl Written {
    pub fn tar_split_gz(&self) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(self.record.as_bytes()).expect("gzip");
        gz.finish().expect("gzip")
    }
}

/// CRC-64 as Go's hash/crc64 with the ISO table: reflected 0xD800000000000000, all-ones
/// start and final xor, big-endian. Bit by bit, unlike the table in the store code.
pub fn crc64(data: &[u8]) -> [u8; 8] {
    let mut c: u64 = !0;
    for b in data {
        c ^= *b as u64;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xD800_0000_0000_0000
            } else {
                c >> 1
            };
        }
    }
    (!c).to_be_bytes()
}

pub fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            s.push(if i <= c.len() {
                A[(n >> (18 - 6 * i)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    s
}

/// A JSON string as Go's encoding/json writes it (HTML-safe escapes included).
fn go_json(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                o.push_str(&format!("\\u{:04x}", ch as u32))
            }
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

struct W {
    style: Style,
    tar: Vec<u8>,
    pending: Vec<u8>,
    lines: Vec<String>,
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}", width = field.len() - 1);
    assert!(s.len() < field.len(), "{v} does not fit");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

impl W {
    fn emit(&mut self, bytes: &[u8]) {
        self.tar.extend_from_slice(bytes);
        self.pending.extend_from_slice(bytes);
    }
    fn segment(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let p = std::mem::take(&mut self.pending);
        let n = self.lines.len();
        self.lines.push(format!(
            "{{\"type\":2,\"payload\":\"{}\",\"position\":{n}}}",
            b64(&p)
        ));
    }
    fn pad(&mut self, size: usize) {
        let pad = size.div_ceil(512) * 512 - size;
        self.emit(&vec![0u8; pad]);
    }
    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        name: &[u8],
        prefix: &[u8],
        mode: u32,
        ids: (u32, u32),
        size: u64,
        mtime: u64,
        flag: u8,
        link: &[u8],
    ) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], ids.0 as u64);
        octal(&mut h[116..124], ids.1 as u64);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link);
        match self.style {
            Style::Go => {
                h[257..263].copy_from_slice(b"ustar\0");
                h[263..265].copy_from_slice(b"00");
                octal(&mut h[329..337], 0);
                octal(&mut h[337..345], 0);
                h[345..345 + prefix.len()].copy_from_slice(prefix);
            }
            Style::GnuDot => {
                h[257..265].copy_from_slice(b"ustar  \0");
                if flag != b'L' {
                    let user = if ids.0 == 0 { "root" } else { "user" };
                    h[265..265 + user.len()].copy_from_slice(user.as_bytes());
                    let group = if ids.1 == 0 { "root" } else { "group" };
                    h[297..297 + group.len()].copy_from_slice(group.as_bytes());
                }
            }
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        let s = format!("{sum:06o}");
        h[148..154].copy_from_slice(s.as_bytes());
        h[154] = 0;
        h[155] = b' ';
        self.emit(&h);
    }
    fn pax(&mut self, base: &[u8], records: &[(String, Vec<u8>)]) {
        let mut data = Vec::new();
        let mut recs = records.to_vec();
        recs.sort();
        for (k, v) in recs {
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while len.to_string().len() + body_len != len {
                len = len.to_string().len() + body_len;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(&v);
            data.push(b'\n');
        }
        let mut name = b"PaxHeaders.0/".to_vec();
        name.extend_from_slice(&base[..base.len().min(87)]);
        self.header(&name, b"", 0, (0, 0), data.len() as u64, 0, b'x', b"");
        self.emit(&data);
        self.pad(data.len());
    }
    fn entry(&mut self, e: &Ent) {
        let (flag, data, link): (u8, &[u8], &[u8]) = match &e.kind {
            Kind::Dir => (b'5', b"", b""),
            Kind::File(d) => (b'0', d, b""),
            Kind::Symlink(t) => (b'2', b"", t.as_bytes()),
            Kind::Hardlink(t) => (b'1', b"", t.as_bytes()),
            Kind::Fifo => (b'6', b"", b""),
        };
        let mut name = match self.style {
            Style::Go => e.path.clone(),
            Style::GnuDot => [b"./" as &[u8], &e.path].concat(),
        };
        if e.kind == Kind::Dir && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let link: Vec<u8> = match (&e.kind, self.style) {
            (Kind::Hardlink(_), Style::GnuDot) => [b"./" as &[u8], link].concat(),
            _ => link.to_vec(),
        };
        let ids = (e.uid, e.gid);
        let mut prefix: &[u8] = b"";
        let mut short = name.clone();
        match self.style {
            Style::Go => {
                let mut pax: Vec<(String, Vec<u8>)> = e
                    .xattrs
                    .iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
                    .collect();
                if name.len() > 100 {
                    // USTAR split at a '/' (prefix <= 155, name <= 100), as Go does.
                    let cut = (0..name.len().min(156))
                        .rev()
                        .find(|i| name[*i] == b'/' && name.len() - i - 1 <= 100 && *i > 0);
                    match cut {
                        Some(i) if name.len() - i - 1 > 0 => {
                            prefix = &name[..i];
                            short = name[i + 1..].to_vec();
                        }
                        _ => {
                            pax.push(("path".into(), name.clone()));
                            short = name[..100].to_vec();
                        }
                    }
                }
                if !pax.is_empty() {
                    let base = short
                        .rsplit(|b| *b == b'/')
                        .next()
                        .unwrap_or(&short)
                        .to_vec();
                    self.pax(&base, &pax);
                }
            }
            Style::GnuDot => {
                assert!(e.xattrs.is_empty(), "GNU style layers carry no xattrs here");
                if name.len() > 100 {
                    let mut data = name.clone();
                    data.push(0);
                    self.header(
                        b"././@LongLink",
                        b"",
                        0o644,
                        (0, 0),
                        data.len() as u64,
                        0,
                        b'L',
                        b"",
                    );
                    self.emit(&data);
                    self.pad(data.len());
                    short = name[..100].to_vec();
                }
            }
        }
        let prefix = prefix.to_vec();
        self.header(
            &short,
            &prefix,
            e.mode,
            ids,
            data.len() as u64,
            e.mtime,
            flag,
            &link,
        );
        self.segment();
        let n = self.lines.len();
        let key_name = match std::str::from_utf8(&name) {
            Ok(s) => format!("\"name\":{}", go_json(s)),
            Err(_) => format!("\"name_raw\":\"{}\"", b64(&name)),
        };
        if data.is_empty() {
            self.lines.push(format!(
                "{{\"type\":1,{key_name},\"payload\":null,\"position\":{n}}}"
            ));
        } else {
            self.lines.push(format!(
                "{{\"type\":1,{key_name},\"size\":{},\"payload\":\"{}\",\"position\":{n}}}",
                data.len(),
                b64(&crc64(data))
            ));
            // Content goes to the tar only: the record reads it back from the layer dir.
            self.tar.extend_from_slice(data);
            self.pad(data.len());
        }
    }
}

/// Write `entries` (in order) as `style` writes them, with the record dockerd keeps.
pub fn write(style: Style, entries: &[Ent]) -> Written {
    let mut w = W {
        style,
        tar: Vec::new(),
        pending: Vec::new(),
        lines: Vec::new(),
    };
    for e in entries {
        w.entry(e);
    }
    w.emit(&[0u8; 1024]);
    if style == Style::GnuDot {
        let rest = w.tar.len().div_ceil(10240) * 10240 - w.tar.len();
        w.emit(&vec![0u8; rest]);
    }
    w.segment();
    if style == Style::GnuDot {
        let n = w.lines.len();
        w.lines
            .push(format!("{{\"type\":2,\"payload\":\"\",\"position\":{n}}}"));
    }
    let mut record = w.lines.join("\n");
    record.push('\n');
    Written { tar: w.tar, record }
}
