//! Ordinary programs on the mount (tar, cp, mv, rm, find, git), compared with kernel overlayfs.

use super::harness::Diff;
use crate::common::layer::Layer;
use crate::common::{self};
use std::process::Command;

#[test]
fn scenario_tool_tar_extract() {
    let src = common::tempdir();
    let l = Layer::new(src.path().join("tree"));
    l.file("a/f1", b"from the tarball\n")
        .file("a/newfile", b"new\n")
        .file_mode("bin/tool", b"#!/bin/sh\n", 0o755)
        .symlink("bin/link", "tool")
        .hardlink("bin/hard", "bin/tool")
        .file("c/cc/leaf", b"replaced leaf\n")
        .dir_mode("opt/empty", 0o700)
        .owner("a/newfile", 1000, 1000)
        .times("a/newfile", (1_000_000_000, 0), (1_000_000_000, 0));
    let tarball = src.path().join("t.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&l.root)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let mut d = Diff::std();
    d.sh_ok(&format!("tar -xpf {} -C . && echo done", tarball.display()));
    d.sh_ok("ls -la --time-style=+ bin | awk '{print $1, $2, $3, $NF}'");
    d.finish();
}

#[test]
fn scenario_tool_cp_a() {
    let mut d = Diff::std();
    d.sh_ok("cp -a a a.copy && cp -a c b/ && cp -a hl1 hl2 sym fifo owned a/sub/ && ls -l --time-style=+ a/sub | sort");
    d.finish();
}

#[test]
fn scenario_tool_mv_lower_dir() {
    let mut d = Diff::std();
    d.sh_ok("mv a a.moved && mv b c/ && mv c/cc c/cc2 && ls a.moved c c/b");
    d.remount();
    d.sh_ok("cat a.moved/f1 c/b/x && ls -R c");
    d.finish();
}

#[test]
fn scenario_tool_rm_rf_lower_tree() {
    let mut d = Diff::std();
    d.sh_ok("rm -rf a b d && ls");
    d.sh("rm -rf . 2>&1; ls -A | wc -l");
    d.remount();
    d.finish();
}

#[test]
fn scenario_tool_find_printf() {
    let mut d = Diff::std();
    d.sh_ok(
        "echo x > a/new; rm a/f1; mkdir d/n; find . -printf '%p %y %m %u %g %n %s %l\\n' | sort",
    );
    d.sh_ok("find . -type f -newer top.txt | sort");
    d.finish();
}

#[test]
fn scenario_tool_git_init_add_commit() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("skipped: no git");
        return;
    }
    let mut d = Diff::std();
    let env = "export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e \
               GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' \
               GIT_COMMITTER_DATE='2020-01-01T00:00:00Z';";
    d.sh_ok(&format!(
        "{env} cd a && git init -q -b main . && git add -A && git commit -qm first && \
         echo change >> f1 && git rm -q f3 && git mv exec.sh run.sh && git commit -qam second && \
         git gc -q && git fsck --no-progress && git log --format='%H %s' && git status --porcelain"
    ));
    // the index records inode numbers and ctimes, which differ between any two filesystems
    d.sh_ok("rm a/.git/index && find a/.git -name '*.lock' | wc -l");
    d.finish();
}
