//! A byte-exact tar stream reader plus its tar-split record.
//!
//! Reading a layer tar, every byte that is not file content (headers, PAX and GNU long-name
//! records, padding, the end-of-archive blocks and any trailing bytes) is kept in the record as
//! a *segment*; file content is recorded only as `(name, size)` because it lives in the layer
//! dir. [`reassemble`] walks the record and the layer dir and writes the original tar back, byte
//! for byte, so a saved layer has the diffID it was loaded with.
//!
//! Record format: Docker's `tar-split.json.gz` (what `github.com/vbatts/tar-split` writes
//! inside dockerd), gzip'd JSON lines, one per item, `position` counting from 0:
//! `{"type":2,"payload":"<base64 bytes>","position":N}` is a segment (raw header, PAX and
//! GNU long-name records, padding, end blocks, trailing bytes) and
//! `{"type":1,"name":"path","size":N,"payload":"<base64 crc64>","position":N}` an entry whose
//! content (if `size` > 0) comes from the layer dir. `name_raw` (base64) replaces `name` when
//! the path is not UTF-8. Docker writes a type 1 line for *every* header, with the path as
//! the tar had it (`./`, `./etc/`, `etc/passwd`, a PAX or GNU long name): `size` is omitted
//! and `payload` is `null` when there is no content, else `payload` is the CRC-64 (Go's
//! `hash/crc64`, ISO table) of the content, 8 bytes big-endian. We write type 1 lines only
//! for content, with the same checksum, so dockerd can rebuild our layers too.

use super::error::{Error, Result, ResultExt};
use std::io::{self, Read, Write};

mod codec;
pub use codec::{Crc64, base64_decode, base64_encode};

/// Largest file size a layer may declare (1 TiB): anything larger is a hostile header.
pub const MAX_ENTRY_SIZE: u64 = 1 << 40;
/// Largest PAX / GNU long-name / non-file payload kept in memory.
pub const MAX_META_SIZE: u64 = 1 << 20;
/// Largest trailing junk after the end-of-archive marker.
const MAX_TRAILER: u64 = 16 << 20;

/// The kinds of entry a layer tar may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// One entry, with PAX / GNU extensions already applied.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (no type bits).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub size: u64,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Sink for the tar-split record.
pub struct Recorder<W: Write> {
    out: W,
    pending: Vec<u8>,
    position: u64,
    /// The file entry being read: its line is written once its content's checksum is known.
    file: Option<(Vec<u8>, u64, Crc64)>,
}

impl<W: Write> Recorder<W> {
    pub fn new(out: W) -> Self {
        Recorder {
            out,
            pending: Vec::new(),
            position: 0,
            file: None,
        }
    }
    fn raw(&mut self, b: &[u8]) {
        self.pending.extend_from_slice(b);
    }
    /// A file entry starts: what was read before it is one segment.
    fn start_file(&mut self, name: &[u8], size: u64) -> io::Result<()> {
        self.flush_segment()?;
        self.file = Some((name.to_vec(), size, Crc64::new()));
        Ok(())
    }
    fn content(&mut self, b: &[u8]) {
        if let Some((_, _, crc)) = &mut self.file {
            crc.update(b);
        }
    }
    /// The file entry's content has all been read.
    fn end_file(&mut self) -> io::Result<()> {
        match self.file.take() {
            Some((name, size, crc)) => self.file_line(&name, size, &crc.sum()),
            None => Ok(()),
        }
    }
    fn flush_segment(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = serde_json::json!({
            "type": 2,
            "payload": base64_encode(&self.pending),
            "position": self.position,
        });
        writeln!(self.out, "{line}")?;
        self.position += 1;
        self.pending.clear();
        Ok(())
    }
    fn file_line(&mut self, name: &[u8], size: u64, crc: &[u8; 8]) -> io::Result<()> {
        let payload = base64_encode(crc);
        let line = match std::str::from_utf8(name) {
            Ok(n) => serde_json::json!({
                "type": 1, "name": n, "size": size, "payload": payload, "position": self.position
            }),
            Err(_) => serde_json::json!({
                "type": 1, "name_raw": base64_encode(name), "size": size, "payload": payload,
                "position": self.position
            }),
        };
        writeln!(self.out, "{line}")?;
        self.position += 1;
        Ok(())
    }
    /// Write the last segment and return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_file()?;
        self.flush_segment()?;
        Ok(self.out)
    }
}

/// Reads a tar stream entry by entry, feeding a [`Recorder`].
pub struct TarReader<R: Read, W: Write> {
    r: R,
    rec: Recorder<W>,
    /// Content bytes of the current entry not yet read, and its padding.
    remaining: u64,
    padding: u64,
    offset: u64,
    current_is_file: bool,
    done: bool,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn parse_num(field: &[u8], what: &str, off: u64) -> io::Result<u64> {
    if let Some(&first) = field.first()
        && first & 0x80 != 0
    {
        // base-256: the rest is a big-endian number; negative values are refused.
        if first & 0x40 != 0 {
            return Err(bad(format!(
                "negative {what} in tar header at offset {off}"
            )));
        }
        let mut v: u64 = (first & 0x3f) as u64;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or_else(|| bad(format!("absurd {what} in tar header at offset {off}")))?;
        }
        return Ok(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .filter(|b| *b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&s)
        .map_err(|_| bad(format!("bad {what} in tar header at offset {off}")))?;
    u64::from_str_radix(s, 8)
        .map_err(|_| bad(format!("bad {what} {s:?} in tar header at offset {off}")))
}

fn cstr_field(f: &[u8]) -> Vec<u8> {
    f.iter().copied().take_while(|b| *b != 0).collect()
}

impl<R: Read, W: Write> TarReader<R, W> {
    pub fn new(r: R, rec: Recorder<W>) -> Self {
        TarReader {
            r,
            rec,
            remaining: 0,
            padding: 0,
            offset: 0,
            current_is_file: false,
            done: false,
        }
    }

    fn read_exact_rec(&mut self, buf: &mut [u8], record: bool) -> io::Result<()> {
        self.r.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad(format!("truncated tar stream at offset {}", self.offset))
            } else {
                e
            }
        })?;
        self.offset += buf.len() as u64;
        if record {
            self.rec.raw(buf);
        }
        Ok(())
    }

    fn read_meta(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_META_SIZE {
            return Err(bad(format!(
                "absurd metadata size {size} in tar header at offset {}",
                self.offset
            )));
        }
        let padded = size.div_ceil(512) * 512;
        let mut buf = vec![0u8; padded as usize];
        self.read_exact_rec(&mut buf, true)?;
        buf.truncate(size as usize);
        Ok(buf)
    }

    /// Skip what is left of the current entry's content (recorded if not a file).
    fn finish_current(&mut self) -> io::Result<()> {
        if self.remaining > 0 {
            if self.current_is_file {
                let mut sink = io::sink();
                self.copy_content(&mut sink)?;
            } else {
                let n = self.remaining;
                self.remaining = 0;
                let mut buf = vec![0u8; n as usize];
                self.read_exact_rec(&mut buf, true)?;
            }
        }
        if self.padding > 0 {
            let mut buf = vec![0u8; self.padding as usize];
            self.padding = 0;
            self.read_exact_rec(&mut buf, true)?;
        }
        Ok(())
    }

    /// Copy the current file entry's content into `w` (exactly its size).
    pub fn copy_content(&mut self, w: &mut dyn Write) -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        while self.remaining > 0 {
            let want = self.remaining.min(buf.len() as u64) as usize;
            let n = self.r.read(&mut buf[..want])?;
            if n == 0 {
                return Err(bad(format!(
                    "truncated tar stream at offset {}",
                    self.offset
                )));
            }
            self.offset += n as u64;
            self.remaining -= n as u64;
            self.rec.content(&buf[..n]);
            w.write_all(&buf[..n])?;
        }
        self.rec.end_file()
    }

    /// The next entry, or `None` at the end of the archive (after the trailer is recorded).
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        self.finish_current()?;
        if self.done {
            return Ok(None);
        }
        let mut ext = Extensions::default();
        loop {
            let hoff = self.offset;
            let Some(h) = self.read_header(ext.long_name.is_none() && ext.pax.is_empty())? else {
                return Ok(None);
            };
            let size = checked_size(&h, hoff)?;
            match h[156] {
                b'x' => {
                    let data = self.read_meta(size)?;
                    ext.pax.extend(parse_pax(&data, hoff)?);
                }
                b'g' => {
                    self.read_meta(size)?;
                }
                b'L' => ext.long_name = Some(without_nuls(self.read_meta(size)?)),
                b'K' => ext.long_link = Some(without_nuls(self.read_meta(size)?)),
                _ => {
                    let e = entry_of(&h, hoff, size, ext)?;
                    self.begin(&e, hoff)?;
                    return Ok(Some(e));
                }
            }
        }
    }

    /// The next 512-byte header, or `None` at the end of the archive: EOF at a header
    /// boundary where `may_end` (no extension header is waiting for its entry), or the
    /// zero block, after which every trailing byte goes into the record.
    fn read_header(&mut self, may_end: bool) -> io::Result<Option<[u8; 512]>> {
        let hoff = self.offset;
        let mut h = [0u8; 512];
        // EOF exactly at a header boundary (no end blocks) is accepted, as GNU tar does.
        let mut got = 0;
        while got < 512 {
            let n = self.r.read(&mut h[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        self.offset += got as u64;
        self.rec.raw(&h[..got]);
        if got == 0 && may_end {
            self.done = true;
            return Ok(None);
        }
        if got < 512 {
            return Err(bad(format!("truncated tar header at offset {hoff}")));
        }
        if h.iter().all(|b| *b == 0) {
            // End of archive: keep every trailing byte in the record.
            let mut rest = Vec::new();
            (&mut self.r).take(MAX_TRAILER + 1).read_to_end(&mut rest)?;
            if rest.len() as u64 > MAX_TRAILER {
                return Err(bad("absurd amount of data after the tar end marker".into()));
            }
            self.offset += rest.len() as u64;
            self.rec.raw(&rest);
            self.done = true;
            return Ok(None);
        }
        Ok(Some(h))
    }

    /// Entry `e` (its header at `hoff`) is next: its content and padding follow.
    fn begin(&mut self, e: &Entry, hoff: u64) -> io::Result<()> {
        self.remaining = e.size;
        self.padding = e.size.div_ceil(512) * 512 - e.size;
        self.current_is_file = e.kind == Kind::File;
        if self.current_is_file {
            if e.size > 0 {
                self.rec.start_file(&e.path, e.size)?;
            }
        } else if e.size > MAX_META_SIZE {
            return Err(bad(format!(
                "absurd size {} for a non-file entry at offset {hoff}",
                e.size
            )));
        }
        Ok(())
    }

    /// After `None`: the record sink and the total bytes consumed.
    pub fn finish(self) -> io::Result<(W, u64, R)> {
        let off = self.offset;
        let w = self.rec.finish()?;
        Ok((w, off, self.r))
    }
}

/// What extension headers (PAX `x`, GNU `L`/`K`) say about the entry that follows them.
#[derive(Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Vec<(String, Vec<u8>)>,
}

/// A GNU long name or link without its trailing NULs.
fn without_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// The header's size field, once its checksum (unsigned or, as old tars wrote it, signed)
/// is found right.
fn checked_size(h: &[u8; 512], hoff: u64) -> io::Result<u64> {
    let stored = parse_num(&h[148..156], "checksum", hoff)?;
    let mut sum: u64 = 0;
    let mut ssum: i64 = 0;
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        sum += b as u64;
        ssum += (b as i8) as i64;
    }
    if stored != sum && stored as i64 != ssum {
        return Err(bad(format!(
            "corrupt tar header (bad checksum) at offset {hoff}"
        )));
    }
    let size = parse_num(&h[124..136], "size", hoff)?;
    if size > MAX_ENTRY_SIZE {
        return Err(bad(format!(
            "absurd entry size {size} in tar header at offset {hoff}"
        )));
    }
    Ok(size)
}

/// The kind of entry a type flag means (those a layer may hold).
fn kind_of(typeflag: u8, hoff: u64) -> io::Result<Kind> {
    Ok(match typeflag {
        b'0' | 0 | b'7' => Kind::File,
        b'1' => Kind::HardLink,
        b'2' => Kind::Symlink,
        b'3' => Kind::Char,
        b'4' => Kind::Block,
        b'5' => Kind::Dir,
        b'6' => Kind::Fifo,
        b'S' => {
            return Err(bad(format!(
                "GNU sparse file at offset {hoff} is not supported"
            )));
        }
        t => {
            return Err(bad(format!(
                "unsupported tar entry type {:?} at offset {hoff}",
                t as char
            )));
        }
    })
}

/// The entry a (non-extension) header describes, with its extensions applied.
fn entry_of(h: &[u8; 512], hoff: u64, size: u64, ext: Extensions) -> io::Result<Entry> {
    let typeflag = h[156];
    let kind = kind_of(typeflag, hoff)?;
    let ustar = &h[257..263] == b"ustar\0";
    let mut path = cstr_field(&h[0..100]);
    if ustar {
        let prefix = cstr_field(&h[345..500]);
        if !prefix.is_empty() {
            let mut p = prefix;
            p.push(b'/');
            p.extend_from_slice(&path);
            path = p;
        }
    }
    if let Some(n) = ext.long_name {
        path = n;
    }
    // A legacy "regular" entry (type NUL) named with a trailing slash is a directory,
    // as Go's archive/tar (and so dockerd) reads it.
    let kind = if typeflag == 0 && path.ends_with(b"/") {
        Kind::Dir
    } else {
        kind
    };
    let link = ext.long_link.unwrap_or_else(|| cstr_field(&h[157..257]));
    let mut e = Entry {
        path,
        link,
        kind,
        mode: (parse_num(&h[100..108], "mode", hoff)? & 0o7777) as u32,
        uid: parse_num(&h[108..116], "uid", hoff)?,
        gid: parse_num(&h[116..124], "gid", hoff)?,
        mtime: parse_num(&h[136..148], "mtime", hoff)? as i64,
        mtime_nsec: 0,
        size,
        devmajor: parse_num(&h[329..337], "devmajor", hoff)? as u32,
        devminor: parse_num(&h[337..345], "devminor", hoff)? as u32,
        xattrs: Vec::new(),
    };
    for (k, v) in ext.pax {
        apply_pax(&mut e, &k, v, hoff)?;
    }
    Ok(e)
}

/// One PAX record `k=v` over what the header said.
fn apply_pax(e: &mut Entry, k: &str, v: Vec<u8>, hoff: u64) -> io::Result<()> {
    let vs = || String::from_utf8_lossy(&v).into_owned();
    let num = |what: &str| {
        vs().parse::<u64>()
            .map_err(|_| bad(format!("bad PAX {what} at offset {hoff}")))
    };
    match k {
        "path" => e.path = v,
        "linkpath" => e.link = v,
        "size" => {
            e.size = num("size")?;
            if e.size > MAX_ENTRY_SIZE {
                return Err(bad(format!(
                    "absurd entry size {} at offset {hoff}",
                    e.size
                )));
            }
        }
        "uid" => e.uid = num("uid")?,
        "gid" => e.gid = num("gid")?,
        "mtime" => {
            let s = vs();
            let (sec, frac) = s.split_once('.').unwrap_or((&s, ""));
            e.mtime = sec.parse().unwrap_or(e.mtime);
            let mut f: String = frac.chars().take(9).collect();
            while !f.is_empty() && f.len() < 9 {
                f.push('0');
            }
            e.mtime_nsec = f.parse().unwrap_or(0);
        }
        _ => {
            if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                e.xattrs.push((x.to_string(), v));
            }
        }
    }
    Ok(())
}

/// Parse PAX extended header records `LEN KEY=VALUE\n` (of the header at offset `hoff`).
fn parse_pax(data: &[u8], hoff: u64) -> io::Result<Vec<(String, Vec<u8>)>> {
    let record = || bad(format!("bad PAX record at offset {hoff}"));
    let length = || bad(format!("bad PAX record length at offset {hoff}"));
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(record)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(length)?;
        if len <= sp + 1 || len > rest.len() {
            return Err(length());
        }
        let rec = &rest[sp + 1..len];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        let eq = rec.iter().position(|b| *b == b'=').ok_or_else(record)?;
        let key = String::from_utf8_lossy(&rec[..eq]).into_owned();
        out.push((key, rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// One line of a tar-split record.
pub enum Item {
    Segment(Vec<u8>),
    /// An entry: `size` bytes of content to read from the layer dir (none when 0), and the
    /// CRC-64 Docker records for content (absent in records of older layerfs versions).
    File {
        name: Vec<u8>,
        size: u64,
        crc: Option<[u8; 8]>,
    },
}

/// Parse one record line.
pub fn parse_line(line: &str) -> Result<Item> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| Error::json("corrupt tar-split record", e))?;
    // `payload` is base64 or null (Go's encoding of a nil byte slice).
    let payload = || -> Result<Vec<u8>> {
        match v.get("payload") {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::String(p)) => base64_decode(p),
            Some(_) => Err(Error::invalid(
                "corrupt tar-split record: payload is not a string",
            )),
        }
    };
    match v.get("type").and_then(|t| t.as_u64()) {
        Some(2) => Ok(Item::Segment(payload()?)),
        Some(1) => {
            let name = match (v.get("name_raw"), v.get("name")) {
                (Some(serde_json::Value::String(r)), _) if !r.is_empty() => base64_decode(r)?,
                (_, Some(serde_json::Value::String(n))) => n.as_bytes().to_vec(),
                _ => Vec::new(),
            };
            let size = match v.get("size") {
                None | Some(serde_json::Value::Null) => 0,
                Some(s) => s.as_u64().filter(|s| *s <= MAX_ENTRY_SIZE).ok_or_else(|| {
                    Error::invalid(format!(
                        "corrupt tar-split record: bad size {s} for {:?}",
                        shown(&name)
                    ))
                })?,
            };
            let p = payload()?;
            let crc = match p.len() {
                0 => None,
                8 => {
                    let mut c = [0u8; 8];
                    c.copy_from_slice(&p);
                    Some(c)
                }
                n => {
                    return Err(Error::invalid(format!(
                        "corrupt tar-split record: the checksum of {:?} has {n} bytes, not 8",
                        shown(&name)
                    )));
                }
            };
            Ok(Item::File { name, size, crc })
        }
        _ => Err(Error::invalid(
            "corrupt tar-split record: unknown entry type",
        )),
    }
}

fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// What errors writing the rebuilt tar name (the caller knows where the output goes).
const OUTPUT: &str = "the output";

/// Write the original tar back from a record and a way to open each file's content.
///
/// Only entries with content (`size` > 0) are opened: directories, links, devices,
/// whiteouts, empty files and the layer root (`./`) are all in the segments already. Exactly
/// `size` bytes are copied; when the record has a checksum, the content must match it.
pub fn reassemble(
    record: impl io::BufRead,
    mut open: impl FnMut(&[u8]) -> io::Result<Box<dyn Read>>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    for line in record.lines() {
        let line = line.io("reading", "the tar-split record")?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line)? {
            Item::Segment(b) => out.write_all(&b).io("writing", OUTPUT)?,
            Item::File { size: 0, .. } => {}
            Item::File { name, size, crc } => {
                let f = open(&name).io("opening the layer file", shown(&name))?;
                let sum = copy_file(f, &name, size, &mut buf, out)?;
                if let Some(want) = crc
                    && sum != want
                {
                    return Err(Error::invalid(format!(
                        "layer file {} does not match its recorded checksum (crc64 {}, recorded {}): the layer dir was modified",
                        shown(&name),
                        crate::digest::hex(&sum),
                        crate::digest::hex(&want)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Copy exactly `size` bytes of layer file `name` from `f` to `out`; their CRC-64.
fn copy_file(
    mut f: Box<dyn Read>,
    name: &[u8],
    size: u64,
    buf: &mut [u8],
    out: &mut dyn Write,
) -> Result<[u8; 8]> {
    let mut sum = Crc64::new();
    let mut left = size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = match f.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(Error::invalid(format!(
                    "layer file {} is shorter than recorded ({} of {size} bytes): the layer dir was modified",
                    shown(name),
                    size - left
                )));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading the layer file", shown(name), e)),
        };
        sum.update(&buf[..n]);
        out.write_all(&buf[..n]).io("writing", OUTPUT)?;
        left -= n as u64;
    }
    Ok(sum.sum())
}

#[cfg(test)]
mod tests;
