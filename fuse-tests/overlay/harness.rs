//! The differential harness: the same layer stack built twice, mounted once with kernel
//! overlayfs (the oracle) and once with the implementation under test; every operation runs
//! on both and must give the same result or errno; trees compare as snapshots; at the end
//! the upper dirs compare (whiteouts normalised) and each upper dir is mounted by the other
//! implementation ("cross-mount"), which must show the same merged tree.

use crate::common::layer::{Layer, build_lowers};
use crate::common::mount::{Dirs, Impl, Mounted, Opts, mount};
use crate::common::snap::{self, Snap, SnapOpts};
use crate::common::sys::outcome;
use crate::common::{self};
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

pub struct Side {
    pub imp: Impl,
    pub dirs: Dirs,
    pub m: Option<Mounted>,
}

impl Side {
    pub fn mnt(&self) -> &Path {
        &self.dirs.mnt
    }
    pub fn label(&self, oracle: bool) -> String {
        format!(
            "{}({})",
            self.imp.name(),
            if oracle { "oracle" } else { "under test" }
        )
    }
}

pub struct Diff {
    pub tmp: tempfile::TempDir,
    pub k: Side,
    pub t: Side,
    pub opts: Opts,
    pub snap: SnapOpts,
    pub log: Vec<String>,
}

/// A standard three-layer stack (l0 top-most) with every kind of entry the scenarios touch.
pub fn std_layers(l: &[Layer]) {
    let (top, mid, bot) = (&l[0], &l[1], &l[2]);
    bot.file("top.txt", b"bottom top.txt\n")
        .file("a/f1", b"bottom a/f1\n")
        .file("a/f2", b"bottom a/f2\n")
        .file("a/sub/deep", b"deep in the bottom\n")
        .file_mode("a/exec.sh", b"#!/bin/sh\necho hi\n", 0o755)
        .file("b/x", b"bottom b/x\n")
        .file("b/y", b"bottom b/y\n")
        .file("d/hidden", b"hidden by an opaque dir\n")
        .file("gone", b"whited out above\n")
        .dir("gonedir/inner")
        .file("gonedir/inner/file", b"under a whited-out dir\n")
        .file("hl1", b"hard linked\n")
        .hardlink("hl2", "hl1")
        .symlink("sym", "top.txt")
        .symlink("dangling", "nowhere")
        .fifo("fifo")
        .file("owned", b"owned by 1234\n")
        .owner("owned", 1234, 4321)
        .xattr("top.txt", "user.color", b"blue")
        .dir_mode("private", 0o700)
        .file_mode("private/secret", b"secret\n", 0o600)
        .file_mode("ro.txt", b"read only\n", 0o444)
        .times("top.txt", (1_600_000_000, 1), (1_500_000_000, 123_456_789));
    mid.file("a/f1", b"middle a/f1\n")
        .file("a/f3", b"middle a/f3\n")
        .file("b/z", b"middle b/z\n")
        .file("mid.txt", b"middle only\n")
        .whiteout("gone")
        .whiteout("gonedir")
        .dir("a/sub")
        .file("a/sub/mid", b"middle a/sub/mid\n");
    top.file("t.txt", b"top only\n")
        .whiteout("a/f2")
        .opaque("d")
        .file("d/visible", b"in the opaque dir\n")
        .file("b/x", b"top b/x\n")
        .dir("c/cc")
        .file("c/cc/leaf", b"top leaf\n");
}

impl Diff {
    /// Three-layer standard stack, kernel with redirect_dir=on.
    pub fn std() -> Diff {
        Diff::new(3, &std_layers)
    }

    pub fn new(nlayers: usize, setup: &dyn Fn(&[Layer])) -> Diff {
        Diff::with_opts(nlayers, setup, Opts::redirect())
    }

    pub fn with_opts(nlayers: usize, setup: &dyn Fn(&[Layer]), opts: Opts) -> Diff {
        let tmp = common::tempdir();
        let mk = |name: &str, imp: Impl| -> Side {
            let root = tmp.path().join(name);
            let lowers = build_lowers(&root, nlayers, setup);
            Side {
                imp,
                dirs: Dirs::new(&root, lowers),
                m: None,
            }
        };
        let k = mk("kernel", Impl::KernelOverlay);
        let t = mk("test", Impl::under_test());
        let mut d = Diff {
            tmp,
            k,
            t,
            opts,
            snap: SnapOpts::default(),
            log: Vec::new(),
        };
        d.mount_both();
        d
    }

    /// Without upper/work: a read-only mount on both sides.
    pub fn read_only(nlayers: usize, setup: &dyn Fn(&[Layer])) -> Diff {
        let tmp = common::tempdir();
        let mk = |name: &str, imp: Impl| -> Side {
            let root = tmp.path().join(name);
            let lowers = build_lowers(&root, nlayers, setup);
            Side {
                imp,
                dirs: Dirs::read_only(&root, lowers),
                m: None,
            }
        };
        let k = mk("kernel", Impl::KernelOverlay);
        let t = mk("test", Impl::under_test());
        let mut d = Diff {
            tmp,
            k,
            t,
            opts: Opts::redirect(),
            snap: SnapOpts::default(),
            log: Vec::new(),
        };
        d.mount_both();
        d
    }

    pub fn mount_both(&mut self) {
        self.k.m = Some(mount(self.k.imp, &self.k.dirs, &self.opts));
        self.t.m = Some(mount(self.t.imp, &self.t.dirs, &self.opts));
    }

    pub fn unmount_both(&mut self) {
        for s in [&mut self.k, &mut self.t] {
            if let Some(mut m) = s.m.take() {
                m.unmount();
            }
        }
    }

    pub fn remount(&mut self) {
        self.unmount_both();
        self.mount_both();
        self.log.push("-- remount".into());
    }

    pub fn km(&self) -> PathBuf {
        self.k.dirs.mnt.clone()
    }
    pub fn tm(&self) -> PathBuf {
        self.t.dirs.mnt.clone()
    }

    fn names(&self) -> (String, String) {
        (self.k.label(true), self.t.label(false))
    }

    /// Run `f` on both mounts; results (value or errno) must be equal. Returns the oracle's.
    #[track_caller]
    pub fn op<T: PartialEq + Debug>(
        &mut self,
        desc: &str,
        f: impl Fn(&Path) -> io::Result<T>,
    ) -> Result<T, String> {
        let a = outcome(f(self.k.mnt()));
        let b = outcome(f(self.t.mnt()));
        self.log.push(format!("{desc} -> {a:?}"));
        if a != b {
            let (kn, tn) = self.names();
            panic!(
                "operation `{desc}` differs:\n  {kn}: {a:?}\n  {tn}: {b:?}\nops so far:\n  {}",
                self.log.join("\n  ")
            );
        }
        a
    }

    /// `op` that must also succeed.
    #[track_caller]
    pub fn ok<T: PartialEq + Debug>(
        &mut self,
        desc: &str,
        f: impl Fn(&Path) -> io::Result<T>,
    ) -> T {
        match self.op(desc, f) {
            Ok(v) => v,
            Err(e) => panic!("`{desc}` failed on both mounts: {e}"),
        }
    }

    /// `op` that must fail with `errno` (a name such as "ENOTEMPTY").
    #[track_caller]
    pub fn fails<T: PartialEq + Debug>(
        &mut self,
        desc: &str,
        errno: &str,
        f: impl Fn(&Path) -> io::Result<T>,
    ) {
        match self.op(desc, f) {
            Err(e) if e == errno => {}
            other => panic!("`{desc}`: expected {errno} (kernel overlayfs too), got {other:?}"),
        }
    }

    /// Run `f` on both mounts without comparing; for per-implementation properties.
    pub fn both<T>(&self, f: impl Fn(&Path) -> T) -> (T, T) {
        (f(self.k.mnt()), f(self.t.mnt()))
    }

    /// A property that must hold on both mounts (Err explains the violation).
    #[track_caller]
    pub fn holds(&self, what: &str, f: impl Fn(&Path) -> Result<(), String>) {
        let (a, b) = self.both(f);
        let (kn, tn) = self.names();
        let mut msg = String::new();
        if let Err(e) = a {
            msg += &format!("  {kn}: {e}\n");
        }
        if let Err(e) = b {
            msg += &format!("  {tn}: {e}\n");
        }
        if !msg.is_empty() {
            panic!("property `{what}` violated:\n{msg}");
        }
    }

    /// A property of each side as a whole (mount, upper dir, lowers), e.g. what copy-up left.
    #[track_caller]
    pub fn holds_side(&self, what: &str, f: impl Fn(&Side) -> Result<(), String>) {
        let (kn, tn) = self.names();
        let mut msg = String::new();
        if let Err(e) = f(&self.k) {
            msg += &format!("  {kn}: {e}\n");
        }
        if let Err(e) = f(&self.t) {
            msg += &format!("  {tn}: {e}\n");
        }
        if !msg.is_empty() {
            panic!("property `{what}` violated:\n{msg}");
        }
    }

    /// `sh -c script` in each mount (cwd = mount root); exit code and stdout must match
    /// (the mount path in output is replaced by MNT). Returns the oracle's stdout.
    #[track_caller]
    pub fn sh(&mut self, script: &str) -> String {
        let run = |s: &Side| {
            let (c, o, e) = common::sh(script, s.mnt());
            let m = s.mnt().display().to_string();
            (c, o.replace(&m, "MNT"), e.replace(&m, "MNT"))
        };
        let a = run(&self.k);
        let b = run(&self.t);
        self.log.push(format!("sh `{script}` -> exit {}", a.0));
        if (a.0, &a.1) != (b.0, &b.1) {
            let (kn, tn) = self.names();
            panic!(
                "shell `{script}` differs:\n  {kn}: exit {}\n--- stdout\n{}--- stderr\n{}\n  {tn}: exit {}\n--- stdout\n{}--- stderr\n{}",
                a.0, a.1, a.2, b.0, b.1, b.2
            );
        }
        a.1
    }

    /// `sh` with `set -e` semantics checked: the oracle must exit 0 (else the test is wrong).
    #[track_caller]
    pub fn sh_ok(&mut self, script: &str) -> String {
        let n = self.log.len();
        let out = self.sh(script);
        assert!(
            self.log[n].ends_with("exit 0"),
            "`{script}` failed on both mounts (a broken scenario)"
        );
        out
    }

    pub fn snapshot_k(&self) -> Snap {
        snap::merged(self.k.mnt(), self.snap)
    }

    /// The merged trees must be equal.
    #[track_caller]
    pub fn check_tree(&self, when: &str) {
        let a = snap::merged(self.k.mnt(), self.snap);
        let b = snap::merged(self.t.mnt(), self.snap);
        let (kn, tn) = self.names();
        if let Some(d) = snap::diff(&a, &b, &kn, &tn) {
            panic!(
                "merged trees differ {when}:\n{d}ops:\n  {}",
                self.log.join("\n  ")
            );
        }
    }

    /// Final checks for huge trees: upper dirs after unmount only (merged views were compared
    /// by the scenario itself).
    #[track_caller]
    pub fn finish_upper_only(mut self) {
        self.unmount_both();
        let (kn, tn) = self.names();
        let uo = SnapOpts {
            dir_nlink: false,
            ..self.snap
        };
        let ua = snap::upper_semantic(self.k.dirs.upper(), &self.k.dirs.lowers, uo);
        let ub = snap::upper_semantic(self.t.dirs.upper(), &self.t.dirs.lowers, uo);
        if let Some(d) = snap::diff(&ua, &ub, &kn, &tn) {
            panic!("upper dirs differ after unmount:\n{d}");
        }
    }

    /// Final checks: merged trees, upper dirs after unmount, both cross-mounts.
    #[track_caller]
    pub fn finish(mut self) {
        self.check_tree("at the end");
        let view = self.snapshot_k();
        self.unmount_both();
        let (kn, tn) = self.names();
        if self.k.dirs.upper.is_none() {
            return;
        }
        // cross-mount: each upper dir read by the other implementation
        let cross = |name: &str, imp: Impl, from: &Side| {
            let root = self.tmp.path().join(name);
            let dirs = Dirs {
                lowers: from.dirs.lowers.clone(),
                upper: from.dirs.upper.clone(),
                work: Some(root.join("work")),
                mnt: root.join("mnt"),
            };
            dirs.create();
            let mut m = mount(imp, &dirs, &Opts::redirect());
            let got = snap::merged(&dirs.mnt, self.snap);
            m.unmount();
            if let Some(d) = snap::diff(&view, &got, "kernel view before unmount", name) {
                panic!(
                    "cross-mount {name}: {} over the upper written by {} shows a different tree:\n{d}ops:\n  {}",
                    imp.name(),
                    from.imp.name(),
                    self.log.join("\n  ")
                );
            }
        };
        cross("kernel-over-test-upper", Impl::KernelOverlay, &self.t);
        cross("test-over-kernel-upper", Impl::under_test(), &self.k);
        // then the upper dirs themselves, normalised
        let uo = SnapOpts {
            dir_nlink: false,
            ..self.snap
        };
        let ua = snap::upper_semantic(self.k.dirs.upper(), &self.k.dirs.lowers, uo);
        let ub = snap::upper_semantic(self.t.dirs.upper(), &self.t.dirs.lowers, uo);
        if let Some(d) = snap::diff(&ua, &ub, &kn, &tn) {
            panic!(
                "upper dirs differ after unmount (whiteouts/opaque normalised):\n{d}ops:\n  {}",
                self.log.join("\n  ")
            );
        }
    }
}
