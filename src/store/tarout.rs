//! Writing layer and export tars from layer dirs: each entry with the owner, mode and type
//! it presents (`override_stat` and `root-ids` applied, stand-ins written as what they stand
//! for), hard links kept, whiteouts and opaque markers in the OCI form.

use super::error::{Error, Result, ResultExt};
use super::merged::{Node, Stack, is_dir};
use crate::format::owner::{self, Presented};
use crate::format::whiteout;
use crate::sys::{self, Stat};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// Where an entry is read from: its layer's root fd, its path there, and that path in full
/// (for messages).
struct Source<'a> {
    dir: BorrowedFd<'a>,
    src: &'a Path,
    at: &'a Path,
}

/// The entry's xattrs as PAX records (overlay-private ones never leave the store; a
/// symlink has none).
fn xattr_records(from: &Source<'_>, st: &Stat) -> Result<Vec<(String, Vec<u8>)>> {
    let mut pax = Vec::new();
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Ok(pax);
    }
    let names = match sys::list_xattr_at(from.dir, from.src) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
        Err(e) => return Err(Error::io("listing the xattrs of", from.at, e)),
    };
    for n in names {
        if whiteout::is_private_xattr(&n) {
            continue;
        }
        match sys::get_xattr_at(from.dir, from.src, &n) {
            Ok(Some(v)) => pax.push((format!("SCHILY.xattr.{}", n.to_string_lossy()), v)),
            Ok(None) => {}
            // trusted.* of other tools, unreadable without root: not the image's.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(Error::io("reading the xattrs of", from.at, e)),
        }
    }
    Ok(pax)
}

/// Writes layer / export tars from layer dirs.
pub struct TarOut<W: Write> {
    pub b: tar::Builder<W>,
    /// (layer, dev, ino) -> first path written, for hard links.
    links: HashMap<(usize, u64, u64), PathBuf>,
    written: BTreeSet<PathBuf>,
}

impl<W: Write> TarOut<W> {
    pub fn new(w: W) -> Self {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        TarOut {
            b,
            links: HashMap::new(),
            written: BTreeSet::new(),
        }
    }

    fn err(p: &Path, e: std::io::Error) -> Error {
        Error::io("writing the tar entry", p, e)
    }

    /// The OCI whiteout that deletes `rel` from the layers below.
    pub fn whiteout(&mut self, rel: &Path) -> Result<()> {
        self.marker(&whiteout::oci_whiteout_path(rel))
    }

    /// The OCI marker that makes directory `rel` opaque.
    pub fn opaque(&mut self, rel: &Path) -> Result<()> {
        self.marker(&whiteout::oci_opaque_path(rel))
    }

    /// An empty regular file (whiteouts and opaque markers).
    fn marker(&mut self, rel: &Path) -> Result<()> {
        if !self.written.insert(rel.to_path_buf()) {
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        // Written out (0:0): left empty, the fields are not numbers to strict readers.
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        self.b
            .append_data(&mut h, rel, std::io::empty())
            .map_err(|e| Self::err(rel, e))
    }

    /// One entry copied from layer `li` path `src`, written as `rel`.
    pub fn entry(
        &mut self,
        stack: &Stack,
        li: usize,
        src: &Path,
        st: &Stat,
        rel: &Path,
    ) -> Result<()> {
        let pr = stack.presented_at(li, src, st)?;
        // Sockets are not archived (docker and tar leave them out too).
        if pr.mode & libc::S_IFMT == libc::S_IFSOCK || !self.written.insert(rel.to_path_buf()) {
            return Ok(());
        }
        let at = stack.paths[li].join(src);
        let from = Source {
            dir: stack.res.layers[li].fd(),
            src,
            at: &at,
        };
        let mut h = tar::Header::new_gnu();
        h.set_uid(pr.uid as u64);
        h.set_gid(pr.gid as u64);
        h.set_mode(pr.mode & 0o7777);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let pax = xattr_records(&from, st)?;
        if !pax.is_empty() {
            self.b
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| Self::err(rel, e))?;
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (li, st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(tar::EntryType::Link);
                return self
                    .b
                    .append_link(&mut h, rel, &first)
                    .map_err(|e| Self::err(rel, e));
            }
            self.links.insert(key, rel.to_path_buf());
        }
        self.body(h, &from, st, &pr, rel)
    }

    /// The entry's type and what goes with it: data, a link target, a device number.
    fn body(
        &mut self,
        mut h: tar::Header,
        from: &Source<'_>,
        st: &Stat,
        pr: &Presented,
        rel: &Path,
    ) -> Result<()> {
        let (dir, src, at) = (from.dir, from.src, from.at);
        let r = match (st.st_mode & libc::S_IFMT, pr.mode & libc::S_IFMT) {
            (libc::S_IFDIR, _) => {
                h.set_entry_type(tar::EntryType::Directory);
                let mut p = rel.as_os_str().to_os_string();
                p.push("/");
                self.b.append_data(&mut h, &p, std::io::empty())
            }
            (libc::S_IFLNK, _) => {
                h.set_entry_type(tar::EntryType::Symlink);
                let t = sys::readlink_at(dir, src).io("reading the symlink", at)?;
                self.b.append_link(&mut h, rel, Path::new(&t))
            }
            (libc::S_IFREG, libc::S_IFREG) => {
                h.set_entry_type(tar::EntryType::Regular);
                let fd = sys::open_at(dir, src, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                    .io("reading", at)?;
                let f = std::fs::File::from(fd);
                let len = f.metadata().io("reading", at)?.len();
                h.set_size(len);
                self.b.append_data(&mut h, rel, f.take(len))
            }
            (libc::S_IFREG, libc::S_IFLNK) => {
                // A plain file standing in for a symlink: it holds the target.
                h.set_entry_type(tar::EntryType::Symlink);
                let t = owner::read_standin_link(dir, src)
                    .io("reading the symlink stand-in", at)?
                    .ok_or_else(|| {
                        Error::invalid(format!("{}: symlink stand-in changed", at.display()))
                    })?;
                self.b.append_link(&mut h, rel, Path::new(&t))
            }
            (_, t) => {
                h.set_entry_type(match t {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                if matches!(t, libc::S_IFCHR | libc::S_IFBLK) {
                    h.set_device_major(sys::major(pr.rdev))
                        .and_then(|()| h.set_device_minor(sys::minor(pr.rdev)))
                        .map_err(|e| Self::err(rel, e))?;
                }
                self.b.append_data(&mut h, rel, std::io::empty())
            }
        };
        r.map_err(|e| Self::err(rel, e))
    }

    /// A whole merged subtree below `node` (not the node itself).
    pub fn merged_subtree(&mut self, stack: &Stack, node: &Node) -> Result<()> {
        for c in stack.children(node)? {
            self.entry(stack, c.layer, &c.src, &c.st, &c.rel)?;
            if is_dir(&c.st) {
                self.merged_subtree(stack, &c)?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<W> {
        self.b
            .into_inner()
            .map_err(|e| Error::io("finishing", "the tar", e))
    }
}
