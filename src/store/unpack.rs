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
    Gzip(flate2::bufread::MultiGzDecoder<R>),
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

/// Open a (possibly compressed) stream as its uncompressed bytes.
pub fn decompress(r: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, String> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br
        .fill_buf()
        .map_err(|e| format!("read failed: {e}"))?
        .to_vec();
    Ok(match sniff(&head) {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(br).map_err(|e| format!("zstd: {e}"))?,
        ),
    })
}

/// Unpack one layer blob into `diff_dir` (created, must not exist) and write its tar-split
/// record to `tarsplit`. Errors say what is wrong; the caller names the layer.
pub fn unpack(
    input: Box<dyn Read + Send>,
    diff_dir: &Path,
    tarsplit: &Path,
) -> Result<Unpacked, String> {
    let blob_hasher = HashingReader::new(input);
    let mut br = BufReader::with_capacity(256 * 1024, blob_hasher);
    let head = br
        .fill_buf()
        .map_err(|e| format!("cannot read layer: {e}"))?
        .to_vec();
    let compression = sniff(&head);
    let decoder = match compression {
        Compression::None => Decoder::Plain(br),
        Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Decoder::Zstd(Box::new(
            zstd::stream::read::Decoder::with_buffer(br)
                .map_err(|e| format!("cannot start zstd decoder: {e}"))?,
        )),
    };
    let tar_hasher = HashingReader::new(decoder);
    std::fs::create_dir(diff_dir)
        .map_err(|e| format!("cannot create {}: {e}", diff_dir.display()))?;
    let root =
        sys::open_dir(diff_dir).map_err(|e| format!("cannot open {}: {e}", diff_dir.display()))?;
    let ts_file =
        File::create(tarsplit).map_err(|e| format!("cannot create {}: {e}", tarsplit.display()))?;
    let gz =
        flate2::write::GzEncoder::new(io::BufWriter::new(ts_file), flate2::Compression::default());
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
        .map_err(|e| format!("cannot record owner of {}: {e}", diff_dir.display()))?;
    }
    let mut size = 0u64;
    while let Some(entry) = reader.next_entry().map_err(stream_error)? {
        if entry.kind == Kind::File {
            size += entry.size;
        }
        x.entry(&entry, &mut reader)?;
    }
    x.finish()?;
    let (gz, _, tar_hasher) = reader.finish().map_err(stream_error)?;
    finish_record(gz, tarsplit)?;
    let (decoder, diff_id, tar_size) = tar_hasher.finish_with_inner();
    // Whatever follows the compressed stream still belongs to the blob digest.
    let mut br = decoder.into_inner();
    io::copy(&mut br, &mut io::sink()).map_err(|e| format!("cannot read layer: {e}"))?;
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

/// A read error of the layer stream, saying so when the compressed data is corrupt.
fn stream_error(e: io::Error) -> String {
    let s = e.to_string();
    if s.contains("corrupt deflate") || s.contains("invalid gzip") || s.contains("Unknown frame") {
        format!("corrupt compressed data: {s}")
    } else {
        s
    }
}

/// Flush the gzip'd tar-split record at `path` to disk.
fn finish_record(
    gz: flate2::write::GzEncoder<io::BufWriter<File>>,
    path: &Path,
) -> Result<(), String> {
    let write = |e: io::Error| format!("cannot write {}: {e}", path.display());
    let bw = gz.finish().map_err(write)?;
    let f = bw.into_inner().map_err(|e| write(e.into_error()))?;
    f.sync_all().map_err(write)
}

/// Clean a tar path: strip `/` and `.` components, refuse `..`. `None` means the root.
pub fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err(format!(
                    "entry {:?} has a '..' component (would escape the layer)",
                    String::from_utf8_lossy(raw)
                ));
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

const OVERRIDE: &str = owner::OVERRIDE_XATTR;

fn shown(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
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
    fn open_parent(&mut self, rel: &Path, create: bool) -> Result<OwnedFd, String> {
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
                    let mode = 0o755;
                    sys::mkdir_at(dir, name, mode).map_err(|e| {
                        format!("cannot create directory for {}: {e}", rel.display())
                    })?;
                    self.implicit.insert(sofar.clone());
                    if !self.privileged {
                        // Until the store copies the lower layers' metadata over it.
                        let v = owner::Override::new(0, 0, libc::S_IFDIR | mode).value();
                        sys::set_xattr_at(dir, name, OsStr::new(OVERRIDE), v.as_bytes(), 0)
                            .map_err(|e| {
                                format!("cannot record owner of {}: {e}", sofar.display())
                            })?;
                    }
                    sys::open_at(dir, name, flags, 0)
                        .map_err(|e| format!("cannot open directory for {}: {e}", rel.display()))?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(format!(
                        "entry {} goes through {:?}, which is a symlink or not a directory (refused: it could point outside the layer)",
                        rel.display(),
                        c.as_os_str()
                    ));
                }
                Err(e) => return Err(format!("cannot open parent of {}: {e}", rel.display())),
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
            .map_err(|e| format!("cannot open layer root: {e}")),
        }
    }

    /// An empty 0600 file at `name` in `dir`, replacing whatever was there: the `.wh.`
    /// forms of whiteouts and opaque markers that an unprivileged store keeps.
    fn marker_file(&self, dir: BorrowedFd<'_>, name: &Path) -> Result<(), String> {
        self.remove_existing(dir, name)?;
        sys::open_at(
            dir,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }

    /// Remove whatever is at `name` in `dir` (a whole tree if a directory).
    fn remove_existing(&self, dir: BorrowedFd<'_>, name: &Path) -> Result<(), String> {
        sys::remove_tree_at(dir, name)
            .map_err(|e| format!("cannot replace {}: {e}", name.display()))
    }

    fn entry<R: Read, W: Write>(
        &mut self,
        e: &Entry,
        r: &mut TarReader<R, W>,
    ) -> Result<(), String> {
        let rel = match clean_path(&e.path)? {
            Some(p) => p,
            None => {
                // "./": the layer root itself.
                if e.kind == Kind::Dir {
                    let root = self
                        .root
                        .try_clone()
                        .map_err(|er| format!("cannot open layer root: {er}"))?;
                    self.meta(root.as_fd(), Path::new(""), e, libc::S_IFDIR, false)?;
                    self.dir_times.push((PathBuf::new(), e.mtime, e.mtime_nsec));
                }
                return Ok(());
            }
        };
        let parent = self.open_parent(&rel, true)?;
        let pfd = parent.as_fd();
        let name_os = rel.file_name().map(OsStr::to_os_string).unwrap_or_default();
        let name = Path::new(&name_os);
        let ctx = |m: String| format!("{}: {m}", rel.display());
        match whiteout::classify_name(&name_os) {
            NameClass::OpaqueMarker => {
                if self.privileged {
                    sys::set_xattr_at(
                        pfd,
                        Path::new(""),
                        OsStr::new("trusted.overlay.opaque"),
                        b"y",
                        0,
                    )
                    .map_err(|er| ctx(format!("cannot mark directory opaque: {er}")))?;
                } else {
                    self.marker_file(pfd, name)
                        .map_err(|er| ctx(format!("cannot create opaque marker: {er}")))?;
                    let _ = sys::set_xattr_at(
                        pfd,
                        Path::new(""),
                        OsStr::new("user.overlay.opaque"),
                        b"y",
                        0,
                    );
                }
                return Ok(());
            }
            NameClass::WhiteoutOf(target) => {
                if target == "." || target == ".." {
                    return Err(ctx(format!(
                        "whiteout of {target:?} refused (it would delete outside its directory)"
                    )));
                }
                if self.privileged {
                    let t = Path::new(target);
                    self.remove_existing(pfd, t)?;
                    sys::mknod_at(pfd, t, libc::S_IFCHR, 0)
                        .map_err(|er| ctx(format!("cannot create whiteout: {er}")))?;
                } else {
                    self.marker_file(pfd, name)
                        .map_err(|er| ctx(format!("cannot create whiteout: {er}")))?;
                }
                return Ok(());
            }
            NameClass::Normal => {}
        }
        if e.kind == Kind::Dir {
            self.implicit.remove(&rel);
            if let Ok(st) = sys::lstat_at(pfd, name)
                && st.st_mode & libc::S_IFMT == libc::S_IFDIR
            {
                // keep it, update metadata below
            } else {
                self.remove_existing(pfd, name)?;
                sys::mkdir_at(pfd, name, 0o700)
                    .map_err(|er| ctx(format!("cannot create directory: {er}")))?;
            }
            self.meta(pfd, name, e, libc::S_IFDIR, false)?;
            self.dir_times.push((rel.clone(), e.mtime, e.mtime_nsec));
            return Ok(());
        }
        self.remove_existing(pfd, name)?;
        match e.kind {
            Kind::File => {
                let fd = sys::open_at(
                    pfd,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|er| ctx(format!("cannot create file: {er}")))?;
                let mut f = io::BufWriter::with_capacity(256 * 1024, File::from(fd));
                r.copy_content(&mut f).map_err(|er| ctx(er.to_string()))?;
                f.flush().map_err(|er| ctx(format!("write failed: {er}")))?;
                self.meta(pfd, name, e, libc::S_IFREG, false)?;
            }
            Kind::Symlink if self.privileged || (e.uid, e.gid) == (0, 0) => {
                sys::symlink_at(OsStr::from_bytes(&e.link), pfd, name)
                    .map_err(|er| ctx(format!("cannot create symlink: {er}")))?;
                self.meta(pfd, name, e, libc::S_IFLNK, false)?;
            }
            Kind::Symlink => {
                // Another owner needs the xattr, which a symlink cannot carry: a plain file
                // holding the target stands in for it.
                let fd = sys::open_at(
                    pfd,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|er| ctx(format!("cannot create symlink stand-in: {er}")))?;
                File::from(fd)
                    .write_all(&e.link)
                    .map_err(|er| ctx(format!("cannot write symlink stand-in: {er}")))?;
                self.meta(pfd, name, e, libc::S_IFLNK, true)?;
            }
            Kind::HardLink => {
                let target = clean_path(&e.link)?
                    .ok_or_else(|| ctx("hard link to the layer root is refused".to_string()))?;
                let tparent = self.open_parent(&target, false).map_err(|m| {
                    ctx(format!(
                        "hard link target {} is not inside this layer ({m})",
                        shown(&e.link)
                    ))
                })?;
                let tname = Path::new(target.file_name().unwrap_or_default());
                let st = sys::lstat_at(tparent.as_fd(), tname).map_err(|_| {
                    ctx(format!(
                        "hard link target {} is not inside this layer",
                        shown(&e.link)
                    ))
                })?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Err(ctx(format!(
                        "hard link to directory {} refused",
                        shown(&e.link)
                    )));
                }
                sys::link_at(tparent.as_fd(), tname, pfd, name)
                    .map_err(|er| ctx(format!("cannot create hard link: {er}")))?;
            }
            Kind::Fifo if self.privileged || (e.uid, e.gid) == (0, 0) => {
                sys::mknod_at(pfd, name, libc::S_IFIFO | 0o600, 0)
                    .map_err(|er| ctx(format!("cannot create fifo: {er}")))?;
                self.meta(pfd, name, e, libc::S_IFIFO, false)?;
            }
            Kind::Fifo => {
                // Another owner needs the xattr, which a fifo cannot carry: a plain file
                // stands in for it.
                sys::open_at(
                    pfd,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|er| ctx(format!("cannot create fifo stand-in: {er}")))?;
                self.meta(pfd, name, e, libc::S_IFIFO, true)?;
            }
            Kind::Char | Kind::Block => {
                let ty = if e.kind == Kind::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                let dev = sys::makedev(e.devmajor, e.devminor);
                if self.privileged && sys::mknod_at(pfd, name, ty | 0o600, dev).is_ok() {
                    self.meta(pfd, name, e, ty, false)?;
                } else {
                    if !self.warned_dev {
                        self.warned_dev = true;
                        self.warnings.push(format!(
                            "device nodes cannot be created unprivileged; stored as plain files with a {OVERRIDE} type (first: {})",
                            rel.display()
                        ));
                    }
                    sys::open_at(
                        pfd,
                        name,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                        0o600,
                    )
                    .map_err(|er| ctx(format!("cannot create device stand-in: {er}")))?;
                    self.meta(pfd, name, e, ty, true)?;
                }
            }
            Kind::Dir => {}
        }
        Ok(())
    }

    /// The tar's xattrs on `name` (overlay-private ones dropped; unprivileged, only `user.*`).
    fn set_xattrs(&mut self, dir: BorrowedFd<'_>, name: &Path, e: &Entry) {
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
            if let Err(er) = sys::set_xattr_at(dir, name, OsStr::new(k), v, 0) {
                self.warnings.push(format!(
                    "{}: xattr {k} not kept: cannot set it: {er}",
                    shown(&e.path)
                ));
            }
        }
    }

    /// Owner, xattrs, mode and (non-dir) times of `name` in `dir`, in that order: chown
    /// clears setuid/setgid bits and `security.capability`, so both come after it.
    fn meta(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &Path,
        e: &Entry,
        ty: u32,
        standin: bool,
    ) -> Result<(), String> {
        let ctx = |m: String| format!("{}: {m}", shown(&e.path));
        let uid = u32::try_from(e.uid).map_err(|_| ctx(format!("uid {} out of range", e.uid)))?;
        let gid = u32::try_from(e.gid).map_err(|_| ctx(format!("gid {} out of range", e.gid)))?;
        if self.privileged {
            sys::chown_at(dir, name, uid, gid).map_err(|er| ctx(format!("cannot chown: {er}")))?;
            self.set_xattrs(dir, name, e);
            if ty != libc::S_IFLNK {
                sys::chmod_at(dir, name, e.mode)
                    .map_err(|er| ctx(format!("cannot chmod: {er}")))?;
            }
        } else if !standin && matches!(ty, libc::S_IFLNK | libc::S_IFIFO) {
            // A real symlink or fifo (the image's 0:0 only): it cannot carry a user xattr,
            // its owner is the store owner's, which stands for 0:0 (`root-ids`).
            if ty == libc::S_IFIFO {
                sys::chmod_at(dir, name, e.mode)
                    .map_err(|er| ctx(format!("cannot chmod: {er}")))?;
            }
        } else {
            // The real mode stays usable by the store; the image's goes into the xattr.
            let real = if ty == libc::S_IFDIR {
                e.mode | 0o700
            } else {
                (e.mode | 0o600) & !0o6000
            };
            sys::chmod_at(dir, name, real).map_err(|er| ctx(format!("cannot chmod: {er}")))?;
            self.set_xattrs(dir, name, e);
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
            sys::set_xattr_at(dir, name, OsStr::new(OVERRIDE), v.as_bytes(), 0)
                .map_err(|er| ctx(format!("cannot record owner/mode in {OVERRIDE}: {er}")))?;
        }
        if ty != libc::S_IFDIR {
            let _ = sys::utimens_at(
                dir,
                name,
                sys::Time::Omit,
                sys::Time::At(e.mtime, e.mtime_nsec),
            );
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        for (p, s, ns) in self.dir_times.iter().rev() {
            let _ = sys::utimens_at(
                self.root.as_fd(),
                p,
                sys::Time::Omit,
                sys::Time::At(*s, *ns),
            );
        }
        Ok(())
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
