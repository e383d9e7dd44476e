//! Layer blob -> layer directory, in one streaming pass: sniff the compression (gzip, zstd
//! or plain tar by magic bytes), hash the blob and the uncompressed tar (diffID), record the
//! tar-split, and extract every entry with no-follow `*at` calls relative to the layer root
//! so nothing can land outside it (`..` is refused, absolute paths are made relative,
//! symlinked parents are refused, hard links must point inside the layer).
//!
//! Whiteouts become the kernel form as root (char 0:0 device, `trusted.overlay.opaque=y`);
//! unprivileged they stay `.wh.NAME` files (plus `user.overlay.opaque=y` for opaque dirs).
//! Unprivileged, the tar's owner and mode go to `user.containers.override_stat` on every
//! entry that can carry it. A symlink or fifo of the image's 0:0 is made for real: the store
//! owner's ids stand for 0:0 (`owner::ROOT_IDS_FILE`). One of another owner, and every
//! device, is a plain file standing in for it, its type in the override (`UID:GID:MODE:TYPE`;
//! a symlink's stand-in holds the target). As root: owner, then xattrs, then mode, then times
//! (chown clears setuid bits and `security.capability`).

use super::error::{Error, Result, ResultExt, is_absent};
use super::tarsplit::{Entry, Kind, Recorder, TarReader};
use crate::digest::{Digest, HashingReader};
use crate::format::owner;
use crate::format::whiteout::{self, NameClass};
use crate::sys;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a layer blob turned out to be.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the blob as stored in the archive (compressed).
    pub blob: Digest,
    pub blob_size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub tar_size: u64,
    /// Bytes of file content in the layer (Docker's layerdb `size`).
    pub size: u64,
    pub compression: Compression,
    pub warnings: Vec<String>,
    /// Parent directories the tar did not list (created 0755 root); the store gives them
    /// the metadata of the same directory in the lower layers when it commits the layer.
    pub implicit_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Guess the compression from the first bytes.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// The decompressor, keeping the compressed reader reachable so it can be drained.
enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, R>>),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        }
    }
}

/// Open a (possibly compressed) stream as its uncompressed bytes; the caller names the
/// stream in an error.
pub fn decompress(r: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf()?.to_vec();
    Ok(match sniff(&head) {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
    })
}

/// What an error reading the layer stream names as its path (the caller adds which layer).
const STREAM: &str = "the layer stream";

/// Unpack one layer blob into `diff_dir` (created, must not exist) and write its tar-split
/// record to `tarsplit`. Errors say what is wrong; the caller names the layer.
pub fn unpack(input: Box<dyn Read + Send>, diff_dir: &Path, tarsplit: &Path) -> Result<Unpacked> {
    let blob_hasher = HashingReader::new(input);
    let mut br = BufReader::with_capacity(256 * 1024, blob_hasher);
    let head = br.fill_buf().io("reading", STREAM)?.to_vec();
    let compression = sniff(&head);
    let decoder = match compression {
        Compression::None => Decoder::Plain(br),
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(br))),
        Compression::Zstd => Decoder::Zstd(Box::new(
            zstd::stream::read::Decoder::with_buffer(br).io("starting zstd on", STREAM)?,
        )),
    };
    let tar_hasher = HashingReader::new(decoder);
    std::fs::create_dir(diff_dir).io("creating", diff_dir)?;
    let root = sys::open_dir(diff_dir).io("opening", diff_dir)?;
    let ts_file = File::create(tarsplit).io("creating", tarsplit)?;
    let gz =
        flate2::write::GzEncoder::new(io::BufWriter::new(ts_file), flate2::Compression::default());
    // The record is written a JSON fragment at a time: batch them before the compressor.
    let gz = io::BufWriter::with_capacity(64 * 1024, gz);
    let mut reader = TarReader::new(tar_hasher, Recorder::new(gz));
    let mut x = Extractor::new(root);
    if !x.privileged {
        // The layer root, unless the tar lists `./` (as the implicit dirs below).
        let v = owner::Override::new(0, 0, libc::S_IFDIR | 0o755).value();
        sys::set_xattr_at(
            x.root.as_fd(),
            Path::new(""),
            OsStr::new(OVERRIDE),
            v.as_bytes(),
            0,
        )
        .io("recording the owner of", diff_dir)?;
    }
    let mut size = 0u64;
    while let Some(entry) = reader.next_entry().map_err(stream_error)? {
        if entry.kind == Kind::File {
            size += entry.size;
        }
        x.entry(&entry, &mut reader)?;
    }
    x.finish();
    let (gz, _, tar_hasher) = reader.finish().map_err(stream_error)?;
    finish_record(gz, tarsplit)?;
    let (decoder, diff_id, tar_size) = tar_hasher.finish_with_inner();
    // Whatever follows the compressed stream still belongs to the blob digest.
    let mut br = decoder.into_inner();
    io::copy(&mut br, &mut io::sink()).io("reading", STREAM)?;
    let (blob, blob_size) = br.into_inner().finish();
    Ok(Unpacked {
        blob,
        blob_size,
        diff_id,
        tar_size,
        size,
        compression,
        warnings: x.warnings,
        implicit_dirs: x.implicit.into_iter().collect(),
    })
}

/// A read error of the layer stream: bad content (a tar the reader refuses, corrupt
/// compressed data) is invalid input, anything else an I/O error.
fn stream_error(e: io::Error) -> Error {
    let s = e.to_string();
    if s.contains("corrupt deflate") || s.contains("invalid gzip") || s.contains("Unknown frame") {
        Error::invalid(format!("corrupt compressed data: {s}"))
    } else if e.kind() == io::ErrorKind::InvalidData {
        Error::invalid(s)
    } else {
        Error::io("reading", STREAM, e)
    }
}

/// Flush the gzip'd tar-split record at `path` to disk.
fn finish_record(
    gz: io::BufWriter<flate2::write::GzEncoder<io::BufWriter<File>>>,
    path: &Path,
) -> Result<()> {
    let gz = gz
        .into_inner()
        .map_err(|e| Error::io("writing", path, e.into_error()))?;
    let bw = gz.finish().io("writing", path)?;
    let f = bw
        .into_inner()
        .map_err(|e| Error::io("writing", path, e.into_error()))?;
    f.sync_all().io("writing", path)
}

/// Clean a tar path: strip `/` and `.` components, refuse `..`. `None` means the root.
pub fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err(Error::invalid(format!(
                    "entry {:?} has a '..' component (would escape the layer)",
                    String::from_utf8_lossy(raw)
                )));
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Per-layer extraction state.
struct Extractor {
    root: OwnedFd,
    privileged: bool,
    /// Directories whose mtime is set at the end (children change it).
    dir_times: Vec<(PathBuf, i64, i64)>,
    warnings: Vec<String>,
    warned_dev: bool,
    warned_xattr: bool,
    implicit: std::collections::BTreeSet<PathBuf>,
}

/// Where an entry goes: its parent dir, its name there, and its path in the layer (which
/// errors name).
#[derive(Clone, Copy)]
struct Place<'a> {
    dir: BorrowedFd<'a>,
    name: &'a Path,
    rel: &'a Path,
}

const OVERRIDE: &str = owner::OVERRIDE_XATTR;

/// Flags that create a new regular file, never through a symlink.
const CREATE: i32 = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;

fn shown(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// An entry the tar says is owned by the image's 0:0.
fn owned_by_root(e: &Entry) -> bool {
    (e.uid, e.gid) == (0, 0)
}

impl Extractor {
    fn new(root: OwnedFd) -> Self {
        Extractor {
            root,
            privileged: sys::geteuid() == 0,
            dir_times: Vec::new(),
            warnings: Vec::new(),
            warned_dev: false,
            warned_xattr: false,
            implicit: std::collections::BTreeSet::new(),
        }
    }

    /// Walk to the parent of `rel` with no-follow opens, creating missing directories.
    fn open_parent(&mut self, rel: &Path, create: bool) -> Result<OwnedFd> {
        let mut cur: Option<OwnedFd> = None;
        let comps: Vec<_> = rel.components().collect();
        let mut sofar = PathBuf::new();
        for c in &comps[..comps.len().saturating_sub(1)] {
            sofar.push(c.as_os_str());
            let name = Path::new(c.as_os_str());
            let dir = cur.as_ref().map(|f| f.as_fd()).unwrap_or(self.root.as_fd());
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let fd = match sys::open_at(dir, name, flags, 0) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    implicit_dir(self.privileged, dir, name, &sofar)?;
                    self.implicit.insert(sofar.clone());
                    sys::open_at(dir, name, flags, 0).io("opening", &sofar)?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(Error::invalid(format!(
                        "entry {} goes through {:?}, which is a symlink or not a directory (refused: it could point outside the layer)",
                        rel.display(),
                        c.as_os_str()
                    )));
                }
                Err(e) => return Err(Error::io("opening", &sofar, e)),
            };
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => sys::open_at(
                self.root.as_fd(),
                Path::new(""),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .io("opening", "the layer root"),
        }
    }

    /// An empty 0600 file at `p`, replacing whatever was there: the `.wh.` forms of
    /// whiteouts and opaque markers that an unprivileged store keeps.
    fn marker_file(&self, p: Place<'_>, what: &'static str) -> Result<()> {
        self.remove_existing(p)?;
        sys::open_at(p.dir, p.name, CREATE, 0o600)
            .map(drop)
            .io(what, p.rel)
    }

    /// Remove whatever is at `p` (a whole tree if a directory).
    fn remove_existing(&self, p: Place<'_>) -> Result<()> {
        sys::remove_tree_at(p.dir, p.name).io("replacing", p.rel)
    }

    /// One tar entry into the layer dir.
    fn entry<R: Read, W: Write>(&mut self, e: &Entry, r: &mut TarReader<R, W>) -> Result<()> {
        let Some(rel) = clean_path(&e.path)? else {
            return self.root_entry(e);
        };
        let parent = self.open_parent(&rel, true)?;
        let name_os = rel.file_name().map(OsStr::to_os_string).unwrap_or_default();
        let p = Place {
            dir: parent.as_fd(),
            name: Path::new(&name_os),
            rel: &rel,
        };
        match whiteout::classify_name(&name_os) {
            NameClass::OpaqueMarker => return self.opaque_marker(p),
            NameClass::WhiteoutOf(target) => return self.whiteout(p, target),
            NameClass::Normal => {}
        }
        if e.kind == Kind::Dir {
            return self.dir(p, e);
        }
        self.remove_existing(p)?;
        match e.kind {
            Kind::File => self.file(p, e, r),
            Kind::Symlink => self.symlink(p, e),
            Kind::HardLink => self.hard_link(p, e),
            Kind::Fifo => self.fifo(p, e),
            Kind::Char | Kind::Block => self.device(p, e),
            Kind::Dir => Ok(()),
        }
    }

    /// `./`: the layer root itself (only a directory entry means anything).
    fn root_entry(&mut self, e: &Entry) -> Result<()> {
        if e.kind == Kind::Dir {
            let root = self.root.try_clone().io("opening", "the layer root")?;
            let p = Place {
                dir: root.as_fd(),
                name: Path::new(""),
                rel: Path::new("."),
            };
            self.meta(p, e, libc::S_IFDIR, false)?;
            self.dir_times.push((PathBuf::new(), e.mtime, e.mtime_nsec));
        }
        Ok(())
    }

    /// `.wh..wh..opq`: the directory it is in is opaque.
    fn opaque_marker(&self, p: Place<'_>) -> Result<()> {
        let here = Path::new("");
        if self.privileged {
            let dir = p.rel.parent().unwrap_or(Path::new(""));
            return sys::set_xattr_at(p.dir, here, OsStr::new("trusted.overlay.opaque"), b"y", 0)
                .io(
                    "marking opaque",
                    if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    },
                );
        }
        self.marker_file(p, "creating the opaque marker")?;
        // The marker file is the form this store reads; the xattr is for kernel overlayfs
        // over the layer dir, which may not take user xattrs: best effort.
        let _ = sys::set_xattr_at(p.dir, here, OsStr::new("user.overlay.opaque"), b"y", 0);
        Ok(())
    }

    /// `.wh.NAME`: `NAME` is deleted from the layers below.
    fn whiteout(&self, p: Place<'_>, target: &OsStr) -> Result<()> {
        if target == "." || target == ".." {
            return Err(Error::invalid(format!(
                "{}: whiteout of {target:?} refused (it would delete outside its directory)",
                p.rel.display()
            )));
        }
        if !self.privileged {
            return self.marker_file(p, "creating the whiteout");
        }
        let t = Path::new(target);
        let rel = p.rel.with_file_name(target);
        let at = Place {
            name: t,
            rel: &rel,
            ..p
        };
        self.remove_existing(at)?;
        sys::mknod_at(p.dir, t, libc::S_IFCHR, 0).io("creating the whiteout", &rel)
    }

    fn dir(&mut self, p: Place<'_>, e: &Entry) -> Result<()> {
        self.implicit.remove(p.rel);
        let keep = match sys::lstat_at(p.dir, p.name) {
            Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            Err(er) if is_absent(&er) => false,
            Err(er) => return Err(Error::io("reading", p.rel, er)),
        };
        if !keep {
            self.remove_existing(p)?;
            sys::mkdir_at(p.dir, p.name, 0o700).io("creating the directory", p.rel)?;
        }
        self.meta(p, e, libc::S_IFDIR, false)?;
        self.dir_times
            .push((p.rel.to_path_buf(), e.mtime, e.mtime_nsec));
        Ok(())
    }

    fn file<R: Read, W: Write>(
        &mut self,
        p: Place<'_>,
        e: &Entry,
        r: &mut TarReader<R, W>,
    ) -> Result<()> {
        let fd = sys::open_at(p.dir, p.name, CREATE, 0o600).io("creating the file", p.rel)?;
        let mut f = io::BufWriter::with_capacity(256 * 1024, File::from(fd));
        // A read error is the stream's, a write error the file's.
        let mut w = Tracked {
            w: &mut f,
            err: None,
        };
        if let Err(er) = r.copy_content(&mut w) {
            return Err(match w.err.take() {
                Some(we) => Error::io("writing", p.rel, we),
                None => stream_error(er),
            });
        }
        f.flush().io("writing", p.rel)?;
        self.meta(p, e, libc::S_IFREG, false)
    }

    fn symlink(&mut self, p: Place<'_>, e: &Entry) -> Result<()> {
        if self.privileged || owned_by_root(e) {
            sys::symlink_at(OsStr::from_bytes(&e.link), p.dir, p.name)
                .io("creating the symlink", p.rel)?;
            return self.meta(p, e, libc::S_IFLNK, false);
        }
        // Another owner needs the xattr, which a symlink cannot carry: a plain file
        // holding the target stands in for it.
        let fd = sys::open_at(p.dir, p.name, CREATE, 0o600)
            .io("creating the symlink stand-in", p.rel)?;
        File::from(fd)
            .write_all(&e.link)
            .io("writing the symlink stand-in", p.rel)?;
        self.meta(p, e, libc::S_IFLNK, true)
    }

    fn hard_link(&mut self, p: Place<'_>, e: &Entry) -> Result<()> {
        let rel = p.rel.display();
        let outside = |why: String| {
            Error::invalid(format!(
                "{rel}: hard link target {} is not inside this layer{why}",
                shown(&e.link)
            ))
        };
        let target = clean_path(&e.link)?.ok_or_else(|| {
            Error::invalid(format!("{rel}: hard link to the layer root is refused"))
        })?;
        let tparent = self
            .open_parent(&target, false)
            .map_err(|m| outside(format!(" ({m})")))?;
        let tname = Path::new(target.file_name().unwrap_or_default());
        let st = match sys::lstat_at(tparent.as_fd(), tname) {
            Ok(st) => st,
            Err(er) if is_absent(&er) => return Err(outside(String::new())),
            Err(er) => return Err(Error::io("reading the hard link target", &target, er)),
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(Error::invalid(format!(
                "{rel}: hard link to directory {} refused",
                shown(&e.link)
            )));
        }
        sys::link_at(tparent.as_fd(), tname, p.dir, p.name).io("creating the hard link", p.rel)
    }

    fn fifo(&mut self, p: Place<'_>, e: &Entry) -> Result<()> {
        if self.privileged || owned_by_root(e) {
            sys::mknod_at(p.dir, p.name, libc::S_IFIFO | 0o600, 0)
                .io("creating the fifo", p.rel)?;
            return self.meta(p, e, libc::S_IFIFO, false);
        }
        // Another owner needs the xattr, which a fifo cannot carry: a plain file stands in.
        sys::open_at(p.dir, p.name, CREATE, 0o600).io("creating the fifo stand-in", p.rel)?;
        self.meta(p, e, libc::S_IFIFO, true)
    }

    fn device(&mut self, p: Place<'_>, e: &Entry) -> Result<()> {
        let ty = if e.kind == Kind::Char {
            libc::S_IFCHR
        } else {
            libc::S_IFBLK
        };
        let dev = sys::makedev(e.devmajor, e.devminor);
        // Root in a user namespace may not make devices: it gets the stand-in, as a user.
        if self.privileged && sys::mknod_at(p.dir, p.name, ty | 0o600, dev).is_ok() {
            return self.meta(p, e, ty, false);
        }
        if !self.warned_dev {
            self.warned_dev = true;
            self.warnings.push(format!(
                "device nodes cannot be created unprivileged; stored as plain files with a {OVERRIDE} type (first: {})",
                p.rel.display()
            ));
        }
        sys::open_at(p.dir, p.name, CREATE, 0o600).io("creating the device stand-in", p.rel)?;
        self.meta(p, e, ty, true)
    }

    /// The tar's xattrs on `p` (overlay-private ones dropped; unprivileged, only `user.*`).
    fn set_xattrs(&mut self, p: Place<'_>, e: &Entry) {
        for (k, v) in &e.xattrs {
            if whiteout::is_private_xattr(OsStr::new(k)) {
                continue;
            }
            if !self.privileged && !k.starts_with("user.") {
                if !self.warned_xattr {
                    self.warned_xattr = true;
                    self.warnings.push(format!(
                        "xattrs outside user.* (such as security.capability) need root and are not kept (first: {} {k})",
                        shown(&e.path)
                    ));
                }
                continue;
            }
            if let Err(er) = sys::set_xattr_at(p.dir, p.name, OsStr::new(k), v, 0) {
                self.warnings.push(format!(
                    "{}: xattr {k} not kept: cannot set it: {er}",
                    shown(&e.path)
                ));
            }
        }
    }

    /// Owner, xattrs, mode and (non-dir) times of `p`, in that order: chown clears
    /// setuid/setgid bits and `security.capability`, so both come after it.
    fn meta(&mut self, p: Place<'_>, e: &Entry, ty: u32, standin: bool) -> Result<()> {
        let range = |what: &str, v: u64| {
            Error::invalid(format!("{}: {what} {v} out of range", shown(&e.path)))
        };
        let uid = u32::try_from(e.uid).map_err(|_| range("uid", e.uid))?;
        let gid = u32::try_from(e.gid).map_err(|_| range("gid", e.gid))?;
        let chmod =
            |mode: u32| sys::chmod_at(p.dir, p.name, mode).io("changing the mode of", p.rel);
        if self.privileged {
            sys::chown_at(p.dir, p.name, uid, gid).io("changing the owner of", p.rel)?;
            self.set_xattrs(p, e);
            if ty != libc::S_IFLNK {
                chmod(e.mode)?;
            }
        } else if !standin && matches!(ty, libc::S_IFLNK | libc::S_IFIFO) {
            // A real symlink or fifo (the image's 0:0 only): it cannot carry a user xattr,
            // its owner is the store owner's, which stands for 0:0 (`root-ids`).
            if ty == libc::S_IFIFO {
                chmod(e.mode)?;
            }
        } else {
            // The real mode stays usable by the store; the image's goes into the xattr.
            chmod(if ty == libc::S_IFDIR {
                e.mode | 0o700
            } else {
                (e.mode | 0o600) & !0o6000
            })?;
            self.set_xattrs(p, e);
            // Always written: without it the store owner's own ids would read as 0:0.
            let mode = if ty == libc::S_IFLNK { 0o777 } else { e.mode };
            let dev = matches!(ty, libc::S_IFCHR | libc::S_IFBLK);
            let v = owner::Override {
                uid,
                gid,
                mode: ty | mode,
                rdev: dev.then(|| sys::makedev(e.devmajor, e.devminor)),
            }
            .value();
            sys::set_xattr_at(p.dir, p.name, OsStr::new(OVERRIDE), v.as_bytes(), 0)
                .io("recording the owner and mode of", p.rel)?;
        }
        if ty != libc::S_IFDIR {
            // Times are the last and least part of an entry; a filesystem that will not
            // set them (a symlink's, on some) does not fail the load.
            let _ = sys::utimens_at(
                p.dir,
                p.name,
                sys::Time::Omit,
                sys::Time::At(e.mtime, e.mtime_nsec),
            );
        }
        Ok(())
    }

    /// Directory times, deepest first (their children are all in by now). Best effort, as
    /// the times of other entries in [`Extractor::meta`].
    fn finish(&mut self) {
        for (p, s, ns) in self.dir_times.iter().rev() {
            let _ = sys::utimens_at(
                self.root.as_fd(),
                p,
                sys::Time::Omit,
                sys::Time::At(*s, *ns),
            );
        }
    }
}

/// A parent directory the tar did not list: 0755, root's (see [`Unpacked::implicit_dirs`]).
fn implicit_dir(privileged: bool, dir: BorrowedFd<'_>, name: &Path, rel: &Path) -> Result<()> {
    let mode = 0o755;
    sys::mkdir_at(dir, name, mode).io("creating the directory", rel)?;
    if !privileged {
        // Until the store copies the lower layers' metadata over it.
        let v = owner::Override::new(0, 0, libc::S_IFDIR | mode).value();
        sys::set_xattr_at(dir, name, OsStr::new(OVERRIDE), v.as_bytes(), 0)
            .io("recording the owner of", rel)?;
    }
    Ok(())
}

/// A writer that keeps its own error, so a copy that fails can tell a write error (the
/// layer dir's) from a read error (the stream's).
struct Tracked<'a, W: Write> {
    w: &'a mut W,
    err: Option<io::Error>,
}

impl<W: Write> Write for Tracked<'_, W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.w.write(b).inspect_err(|e| {
            self.err = Some(match e.raw_os_error() {
                Some(n) => io::Error::from_raw_os_error(n),
                None => io::Error::new(e.kind(), e.to_string()),
            });
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path(b"./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(
            clean_path(b"/etc/passwd").unwrap(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(clean_path(b"./").unwrap(), None);
        assert!(clean_path(b"a/../../x").is_err());
        assert!(clean_path(b"..").is_err());
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"etc/"), Compression::None);
    }
}
