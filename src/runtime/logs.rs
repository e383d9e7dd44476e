//! Container logs in docker's json-file format (`<id>-json.log`): one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 with nanoseconds"}`. A line longer
//! than 16 KiB, or output that ends without a newline, is split into entries as docker does.
//! The writer serves the monitor; the reader serves `logs [--tail N] [-f]`.

use crate::store::human::now_rfc3339;
use serde::Deserialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::Path;
use std::sync::Mutex;

/// Which stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// docker's cap on one entry's text.
const MAX_ENTRY: usize = 16 * 1024;

/// Appends entries to a log file; shared by the threads that copy the container's streams.
pub struct LogWriter {
    file: Mutex<File>,
}

impl LogWriter {
    /// Open (create) `path` for appending.
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            file: Mutex::new(file),
        })
    }

    /// Log `data` read from `stream`: one entry per line (a partial last line is an entry
    /// of its own, without the newline).
    pub fn write(&self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let time = now_rfc3339();
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut rest = data;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .take(MAX_ENTRY)
                .position(|&b| b == b'\n')
                .map_or(rest.len().min(MAX_ENTRY), |i| i + 1);
            let (line, tail) = rest.split_at(end);
            let v = serde_json::json!({
                "log": String::from_utf8_lossy(line),
                "stream": stream.name(),
                "time": time,
            });
            serde_json::to_writer(&mut out, &v).map_err(io::Error::other)?;
            out.push(b'\n');
            rest = tail;
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&out)
    }
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
}

/// One entry read back: its stream and text.
pub type Line = (Stream, String);

fn parse(line: &str) -> Option<Line> {
    let e: Entry = serde_json::from_str(line).ok()?;
    let s = if e.stream == "stderr" {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    Some((s, e.log))
}

/// The entries of a log file, the last `tail` of them when given (an absent file has none);
/// and the offset where reading stopped (to follow from).
pub fn read(path: &Path, tail: Option<usize>) -> io::Result<(Vec<Line>, u64)> {
    let (mut all, off) = read_from(path, 0)?;
    if let Some(t) = tail {
        let skip = all.len().saturating_sub(t);
        all.drain(..skip);
    }
    Ok((all, off))
}

/// The complete entries written after `off`, and the new offset.
pub fn read_from(path: &Path, off: u64) -> io::Result<(Vec<Line>, u64)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), off)),
        Err(e) => return Err(e),
    };
    f.seek(io::SeekFrom::Start(off))?;
    let mut r = BufReader::new(f);
    let mut out = Vec::new();
    let mut pos = off;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = r.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        pos += n as u64;
        if let Some(l) = parse(buf.trim_end()) {
            out.push(l);
        }
    }
    Ok((out, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_per_line_tail_and_follow() {
        let dir = std::env::temp_dir().join(format!("layerfs-logs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c-json.log");
        let w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"one\ntwo\nthr").unwrap();
        w.write(Stream::Stderr, b"err \"q\"\n").unwrap();
        let (all, off) = read(&p, None).unwrap();
        let texts: Vec<&str> = all.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(texts, ["one\n", "two\n", "thr", "err \"q\"\n"]);
        assert_eq!(all[3].0, Stream::Stderr);
        let (last, _) = read(&p, Some(1)).unwrap();
        assert_eq!(last[0].1, "err \"q\"\n");
        w.write(Stream::Stdout, b"more\n").unwrap();
        let (new, off2) = read_from(&p, off).unwrap();
        assert_eq!(new.len(), 1);
        assert!(off2 > off);
        let big = vec![b'x'; MAX_ENTRY + 10];
        w.write(Stream::Stdout, &big).unwrap();
        let (new, _) = read_from(&p, off2).unwrap();
        assert_eq!(new.len(), 2);
        assert_eq!(new[0].1.len(), MAX_ENTRY);
        let raw = std::fs::read_to_string(&p).unwrap();
        let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
        assert_eq!(first["stream"], "stdout");
        assert!(first["time"].as_str().unwrap().ends_with('Z'));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
