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

/// Writes layer / export tars from layer dirs.
pub struct TarOut<W: Write> {
    pub b: tar::Builder<W>,
    /// (layer, dev, ino) -> first path written, for hard links.
    links: HashMap<(usize, u64, u64), PathBuf>,
    written: BTreeSet<PathBuf>,
}

/// Where an entry being written comes from: layer dir fd `dir`, its path `src` there
/// (`at` in full, for errors), its stat and what it presents.
#[derive(Clone, Copy)]
struct Source<'a> {
    dir: BorrowedFd<'a>,
    src: &'a Path,
    at: &'a Path,
    st: &'a Stat,
    pr: &'a Presented,
}

/// An entry's xattrs as PAX records (private overlay ones never leave the store).
fn xattr_records(dir: BorrowedFd<'_>, src: &Path, at: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let names = match sys::list_xattr_at(dir, src) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
        Err(e) => return Err(Error::io("listing the xattrs of", at, e)),
    };
    let mut pax = Vec::new();
    for n in names {
        if whiteout::is_private_xattr(&n) {
            continue;
        }
        match sys::get_xattr_at(dir, src, &n) {
            Ok(Some(v)) => pax.push((format!("SCHILY.xattr.{}", n.to_string_lossy()), v)),
            // Gone since it was listed.
            Ok(None) => {}
            // trusted.* of other tools, unreadable without root: not the image's.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(Error::io("reading the xattrs of", at, e)),
        }
    }
    Ok(pax)
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
        if !self.written.insert(rel.to_path_buf()) {
            return Ok(());
        }
        let dir = stack.res.layers[li].fd();
        let at = stack.paths[li].join(src);
        let pr = stack.presented_at(li, src, st)?;
        let mut h = tar::Header::new_gnu();
        h.set_uid(pr.uid as u64);
        h.set_gid(pr.gid as u64);
        h.set_mode(pr.mode & 0o7777);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            let pax = xattr_records(dir, src, &at)?;
            if !pax.is_empty() {
                self.b
                    .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .map_err(|e| Self::err(rel, e))?;
            }
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
        let e = Source {
            dir,
            src,
            at: &at,
            st,
            pr: &pr,
        };
        self.content(e, h, rel)
    }

    /// The rest of an entry's header and its content, by what it is on disk and what it
    /// presents (a stand-in file presents a symlink, fifo or device).
    fn content(&mut self, e: Source<'_>, mut h: tar::Header, rel: &Path) -> Result<()> {
        let err = |er| Self::err(rel, er);
        match (e.st.st_mode & libc::S_IFMT, e.pr.mode & libc::S_IFMT) {
            (libc::S_IFDIR, _) => {
                h.set_entry_type(tar::EntryType::Directory);
                let mut p = rel.as_os_str().to_os_string();
                p.push("/");
                self.b
                    .append_data(&mut h, &p, std::io::empty())
                    .map_err(err)
            }
            (libc::S_IFLNK, _) => {
                h.set_entry_type(tar::EntryType::Symlink);
                let t = sys::readlink_at(e.dir, e.src).io("reading the symlink", e.at)?;
                self.b.append_link(&mut h, rel, Path::new(&t)).map_err(err)
            }
            (libc::S_IFREG, libc::S_IFREG) => {
                h.set_entry_type(tar::EntryType::Regular);
                let fd = sys::open_at(e.dir, e.src, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                    .io("reading", e.at)?;
                let f = std::fs::File::from(fd);
                let len = f.metadata().io("reading", e.at)?.len();
                h.set_size(len);
                self.b.append_data(&mut h, rel, f.take(len)).map_err(err)
            }
            (libc::S_IFREG, libc::S_IFLNK) => {
                // A plain file standing in for a symlink: it holds the target.
                h.set_entry_type(tar::EntryType::Symlink);
                let t = owner::read_standin_link(e.dir, e.src)
                    .io("reading the symlink stand-in", e.at)?
                    .ok_or_else(|| {
                        Error::invalid(format!("{}: symlink stand-in changed", e.at.display()))
                    })?;
                self.b.append_link(&mut h, rel, Path::new(&t)).map_err(err)
            }
            (_, t) => {
                let et = match t {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    libc::S_IFIFO => tar::EntryType::Fifo,
                    _ => return Ok(()), // sockets are not archived
                };
                h.set_entry_type(et);
                if matches!(t, libc::S_IFCHR | libc::S_IFBLK) {
                    h.set_device_major(sys::major(e.pr.rdev))
                        .and_then(|()| h.set_device_minor(sys::minor(e.pr.rdev)))
                        .map_err(err)?;
                }
                self.b
                    .append_data(&mut h, rel, std::io::empty())
                    .map_err(err)
            }
        }
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
