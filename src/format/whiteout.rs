//! Whiteout, opaque-directory and redirect forms: pure classification of directory entries
//! and xattr names, and the names of the OCI markers a layer tar carries.
//!
//! ```text
//! upper/ or lower/
//!   gone            c--------- 0:0      kernel whiteout of "gone"      (written as root)
//!   .wh.gone        -rw-------          OCI / unprivileged whiteout    (written unprivileged)
//!   dir/            trusted.overlay.opaque=y   (root)      \
//!                   user.overlay.opaque=y      (unpriv)     > opaque: hides lower "dir"
//!   dir/.wh..wh..opq                           (OCI form)  /
//!   moved/          trusted.overlay.redirect="/old/path"  (renamed lower dir)
//! ```
//! All forms are read; the kernel form is written when mknod/trusted xattrs are permitted.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Prefix of an OCI / unprivileged whiteout file.
pub const WH_PREFIX: &[u8] = b".wh.";
/// Name of the OCI opaque marker file.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Xattrs that mark a directory opaque when their value is `y`.
pub const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
/// Xattrs that record where a renamed directory came from.
pub const REDIRECT_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "user.overlay.redirect"];

/// What a directory entry's name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameClass<'a> {
    /// An ordinary name (may still be a char-device whiteout: see [`is_whiteout_dev`]).
    Normal,
    /// `.wh.NAME`: hides `NAME` in lower layers.
    WhiteoutOf(&'a OsStr),
    /// `.wh..wh..opq`: the containing directory is opaque.
    OpaqueMarker,
}

/// Classify an entry by name alone.
pub fn classify_name(name: &OsStr) -> NameClass<'_> {
    let b = name.as_bytes();
    if b == OPAQUE_MARKER {
        NameClass::OpaqueMarker
    } else if b.len() > WH_PREFIX.len() && b.starts_with(WH_PREFIX) {
        NameClass::WhiteoutOf(OsStr::from_bytes(&b[WH_PREFIX.len()..]))
    } else {
        NameClass::Normal
    }
}

/// Is this (mode, rdev) a kernel whiteout: a character device 0:0?
pub fn is_whiteout_dev(mode: u32, rdev: u64) -> bool {
    mode & libc::S_IFMT == libc::S_IFCHR && rdev == 0
}

/// Is an opaque xattr value "yes"? (`y`; the kernel's `x` means "has xwhiteouts", not opaque.)
pub fn is_opaque_value(v: &[u8]) -> bool {
    v == b"y"
}

/// Xattrs private to overlay implementations: never shown through the merged view,
/// never settable through it.
pub fn is_private_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.")
        || b.starts_with(b"user.overlay.")
        || b.starts_with(b"user.fuseoverlayfs.")
        || b.starts_with(b"security.fuseoverlayfs.")
        || b == b"user.containers.override_stat"
}

/// Prefixes whose names a user may still set through the mount: stored escaped as
/// `PREFIX` + `overlay.` + rest, as kernel overlayfs (6.7+) does for nested overlays.
const ESCAPABLE: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// How an xattr name given through the mount is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredName {
    /// Stored as given.
    Plain,
    /// Stored under this escaped name.
    Escaped(std::ffi::OsString),
    /// Private to overlay implementations: not settable, never found.
    Private,
}

/// The stored form of a name given through the mount.
pub fn stored_xattr_name(name: &OsStr) -> StoredName {
    let b = name.as_bytes();
    for p in ESCAPABLE {
        if let Some(rest) = b.strip_prefix(p) {
            let mut v = p.to_vec();
            v.extend_from_slice(b"overlay.");
            v.extend_from_slice(rest);
            return StoredName::Escaped(OsStr::from_bytes(&v).to_os_string());
        }
    }
    if is_private_xattr(name) {
        StoredName::Private
    } else {
        StoredName::Plain
    }
}

/// The name a stored xattr shows through the mount, if any.
pub fn shown_xattr_name(stored: &OsStr) -> Option<std::ffi::OsString> {
    let b = stored.as_bytes();
    for p in ESCAPABLE {
        if let Some(rest) = b.strip_prefix(p) {
            let inner = rest.strip_prefix(b"overlay.")?;
            let mut v = p.to_vec();
            v.extend_from_slice(inner);
            return Some(OsStr::from_bytes(&v).to_os_string());
        }
    }
    if is_private_xattr(stored) {
        None
    } else {
        Some(stored.to_os_string())
    }
}

/// The name of the OCI whiteout file for `name`.
pub fn wh_name(name: &OsStr) -> std::ffi::OsString {
    let mut v = WH_PREFIX.to_vec();
    v.extend_from_slice(name.as_bytes());
    std::ffi::OsString::from(OsStr::from_bytes(&v))
}

/// The OCI whiteout file (`DIR/.wh.NAME`) that deletes `rel` in a layer tar.
pub fn oci_whiteout_path(rel: &Path) -> std::path::PathBuf {
    let name = rel.file_name().unwrap_or_default();
    rel.with_file_name(wh_name(name))
}

/// The OCI marker file (`DIR/.wh..wh..opq`) that makes directory `dir` opaque in a layer tar.
pub fn oci_opaque_path(dir: &Path) -> std::path::PathBuf {
    dir.join(OsStr::from_bytes(OPAQUE_MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;

    #[test]
    fn names() {
        let cases: &[(&str, NameClass<'_>)] = &[
            ("file", NameClass::Normal),
            (".wh.file", NameClass::WhiteoutOf(OsStr::new("file"))),
            (".wh..wh..opq", NameClass::OpaqueMarker),
            (".wh.", NameClass::Normal),
            (".wh..hidden", NameClass::WhiteoutOf(OsStr::new(".hidden"))),
            (".whx", NameClass::Normal),
            ("a.wh.b", NameClass::Normal),
        ];
        for (name, want) in cases {
            assert_eq!(classify_name(OsStr::new(name)), *want, "{name}");
        }
    }

    #[test]
    fn devices() {
        assert!(is_whiteout_dev(libc::S_IFCHR | 0o644, 0));
        assert!(!is_whiteout_dev(libc::S_IFCHR | 0o644, sys::makedev(1, 3)));
        assert!(!is_whiteout_dev(libc::S_IFREG | 0o644, 0));
        assert!(!is_whiteout_dev(libc::S_IFBLK, 0));
    }

    #[test]
    fn private_xattrs() {
        for n in [
            "trusted.overlay.opaque",
            "user.overlay.redirect",
            "user.fuseoverlayfs.origin",
            "security.fuseoverlayfs.override_stat",
            "user.containers.override_stat",
        ] {
            assert!(is_private_xattr(OsStr::new(n)), "{n}");
        }
        for n in [
            "user.foo",
            "security.capability",
            "trusted.other",
            "user.overlayx",
        ] {
            assert!(!is_private_xattr(OsStr::new(n)), "{n}");
        }
    }

    #[test]
    fn escaping() {
        let e = |n: &str| stored_xattr_name(OsStr::new(n));
        assert_eq!(e("user.foo"), StoredName::Plain);
        assert_eq!(
            e("trusted.overlay.opaque"),
            StoredName::Escaped("trusted.overlay.overlay.opaque".into())
        );
        assert_eq!(
            e("user.overlay.x"),
            StoredName::Escaped("user.overlay.overlay.x".into())
        );
        assert_eq!(e("user.containers.override_stat"), StoredName::Private);
        let s = |n: &str| shown_xattr_name(OsStr::new(n)).map(|x| x.to_string_lossy().into_owned());
        assert_eq!(s("trusted.overlay.opaque"), None);
        assert_eq!(
            s("trusted.overlay.overlay.opaque").as_deref(),
            Some("trusted.overlay.opaque")
        );
        assert_eq!(s("user.overlay.redirect"), None);
        assert_eq!(s("user.fuseoverlayfs.opaque"), None);
        assert_eq!(
            s("security.capability").as_deref(),
            Some("security.capability")
        );
    }

    #[test]
    fn opaque_values() {
        assert!(is_opaque_value(b"y"));
        assert!(!is_opaque_value(b"x"));
        assert!(!is_opaque_value(b"n"));
        assert!(!is_opaque_value(b""));
    }
}
