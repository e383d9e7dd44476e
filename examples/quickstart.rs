//! The first thing to run: build two small layers, mount them with layerfs, change a few
//! things through the mount, and look at what landed in the upper directory; then make a
//! small image in code, load it into a fresh store, mount it, write, and commit.
//!
//! `cargo run --release --example quickstart` (as root, or as a user who can use
//! /dev/fuse and fusermount3). Everything happens in a fresh temp directory.

use layerfs::mount::{self, MountOptions, MountPlan, MountRequest};
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

fn main() {
    // `mount::run` starts the mount daemon by re-running the current executable with
    // `mount -f ...`: here that is this example, so hand such a call to layerfs itself.
    if std::env::var_os(mount::READY_FD_ENV).is_some() {
        std::process::exit(layerfs::cli::main());
    }
    if let Err(e) = run() {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
}

fn show_tree(title: &str, root: &Path) -> std::io::Result<()> {
    println!("--- {title} ({})", root.display());
    let mut stack = vec![root.to_path_buf()];
    let mut lines = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let p = e.path();
            let md = fs::symlink_metadata(&p)?;
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_char_device() {
                "whiteout (char 0:0)".to_string()
            } else if ft.is_symlink() {
                format!("symlink -> {}", fs::read_link(&p)?.display())
            } else {
                format!(
                    "file, {} bytes: {:?}",
                    md.len(),
                    fs::read_to_string(&p).unwrap_or_default().trim()
                )
            };
            lines.push(format!("  {rel:<20} {what}"));
        }
    }
    lines.sort();
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let base = std::env::temp_dir().join(format!("layerfs-quickstart-{}", std::process::id()));
    let e = |what: &str| {
        let what = what.to_string();
        move |err: std::io::Error| format!("{what}: {err}")
    };
    let (lower1, lower2) = (base.join("lower1"), base.join("lower2"));
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for d in [&lower1, &lower2, &upper, &work, &merged] {
        fs::create_dir_all(d).map_err(e("creating the example dirs"))?;
    }
    // lower2 is the base layer, lower1 sits on top of it.
    fs::create_dir_all(lower2.join("etc")).map_err(e("lower2/etc"))?;
    fs::write(lower2.join("etc/motd"), "hello from the base layer\n").map_err(e("lower2"))?;
    fs::write(lower2.join("etc/hostname"), "base\n").map_err(e("lower2"))?;
    fs::write(lower2.join("notes.txt"), "old notes\n").map_err(e("lower2"))?;
    fs::write(lower1.join("notes.txt"), "newer notes from lower1\n").map_err(e("lower1"))?;
    show_tree("lower2 (bottom layer)", &lower2).map_err(e("listing"))?;
    show_tree("lower1 (top lower layer)", &lower1).map_err(e("listing"))?;

    let req = MountRequest {
        plan: MountPlan {
            lowers: vec![lower1.clone(), lower2.clone()],
            upper: Some(upper.clone()),
            work: Some(work.clone()),
            ..Default::default()
        },
        mountpoint: merged.clone(),
        options: MountOptions::default(),
        foreground: false,
    };
    println!(
        "\n$ layerfs -o {} {}",
        mount::to_option_string(&req.plan, &MountOptions::default()),
        merged.display()
    );
    mount::run(req)?;
    let result = (|| -> Result<(), String> {
        show_tree("merged view", &merged).map_err(e("listing the mount"))?;
        println!("\n$ echo 'changed' >> merged/etc/motd   (copy-up of a lower file)");
        let mut motd = fs::read_to_string(merged.join("etc/motd")).map_err(e("reading motd"))?;
        motd.push_str("changed through the mount\n");
        fs::write(merged.join("etc/motd"), motd).map_err(e("writing motd"))?;
        println!("$ rm merged/etc/hostname              (whiteout of a lower file)");
        fs::remove_file(merged.join("etc/hostname")).map_err(e("removing hostname"))?;
        println!("$ echo new > merged/new.txt           (a new file goes to upper)");
        fs::write(merged.join("new.txt"), "brand new\n").map_err(e("new.txt"))?;
        show_tree("merged view after the changes", &merged).map_err(e("listing the mount"))?;
        Ok(())
    })();
    let unmounted = mount::unmount(&merged);
    result?;
    unmounted?;
    println!("\n(unmounted)");
    show_tree("upper: only what changed", &upper).map_err(e("listing upper"))?;
    show_tree("lower2 is untouched", &lower2).map_err(e("listing lower2"))?;
    let r = store_demo(&base);
    let _ = fs::remove_dir_all(&base);
    r
}

/// Run one `layerfs` command line through the library, echoing it like a shell would.
fn layerfs(root: &Path, args: &[&str]) -> Result<(), String> {
    println!("\n$ layerfs --root {} {}", root.display(), args.join(" "));
    let rest: Vec<std::ffi::OsString> = args[1..].iter().map(Into::into).collect();
    let code = match args[0] {
        "image" => layerfs::cli::image::main(Some(root.to_path_buf()), rest),
        "container" => layerfs::cli::container::main(Some(root.to_path_buf()), rest),
        other => return Err(format!("unknown command {other}")),
    };
    if code == 0 {
        Ok(())
    } else {
        Err(format!("layerfs {} failed (exit {code})", args.join(" ")))
    }
}

/// The image store: a one-layer image made in code, imported, mounted as a container,
/// changed, committed.
fn store_demo(base: &Path) -> Result<(), String> {
    println!("\n=== the image store ===");
    let e = |what: &str| {
        let what = what.to_string();
        move |err: std::io::Error| format!("{what}: {err}")
    };
    let store = base.join("store");
    let mnt = base.join("container");
    fs::create_dir_all(&mnt).map_err(e("creating the mountpoint"))?;
    // A tiny root filesystem as a tar, built in memory.
    let tarball = base.join("rootfs.tar");
    {
        let f = fs::File::create(&tarball).map_err(e("creating rootfs.tar"))?;
        let mut b = tar::Builder::new(f);
        let mut add = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(1_700_000_000);
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
            }
            h.set_cksum();
            b.append_data(&mut h, path, data)
        };
        add("etc/", b"", 0o755).map_err(e("rootfs.tar"))?;
        add("etc/os-release", b"NAME=quickstart\n", 0o644).map_err(e("rootfs.tar"))?;
        add("etc/motd", b"welcome to the quickstart image\n", 0o644).map_err(e("rootfs.tar"))?;
        add("bin/", b"", 0o755).map_err(e("rootfs.tar"))?;
        add("bin/hello", b"#!/bin/sh\necho hello\n", 0o755).map_err(e("rootfs.tar"))?;
        b.finish().map_err(e("rootfs.tar"))?;
    }
    let t = tarball.to_string_lossy().into_owned();
    let m = mnt.to_string_lossy().into_owned();
    layerfs(
        &store,
        &[
            "image",
            "import",
            &t,
            "quickstart:1",
            "-c",
            "CMD [\"/bin/hello\"]",
        ],
    )?;
    layerfs(&store, &["image", "ls"])?;
    layerfs(&store, &["image", "layers", "quickstart:1"])?;
    layerfs(
        &store,
        &["container", "create", "quickstart:1", "--name", "demo"],
    )?;
    layerfs(&store, &["container", "mount", "demo", &m])?;
    let changed = (|| -> Result<(), String> {
        println!("$ cat {m}/etc/motd");
        print!(
            "{}",
            fs::read_to_string(mnt.join("etc/motd")).map_err(e("reading motd"))?
        );
        println!("$ echo 'edited in the container' > {m}/etc/motd; rm {m}/bin/hello");
        fs::write(mnt.join("etc/motd"), "edited in the container\n").map_err(e("writing motd"))?;
        fs::remove_file(mnt.join("bin/hello")).map_err(e("removing bin/hello"))?;
        Ok(())
    })();
    let unmounted = mount::unmount(&mnt);
    changed?;
    unmounted?;
    layerfs(&store, &["container", "diff", "demo"])?;
    layerfs(
        &store,
        &[
            "container",
            "commit",
            "demo",
            "quickstart:2",
            "-m",
            "edited motd",
        ],
    )?;
    layerfs(&store, &["image", "history", "quickstart:2"])?;
    layerfs(&store, &["image", "ls"])?;
    // Round trip through a docker-archive into a second store, then mount read-only.
    let archive = base.join("quickstart2.tar").to_string_lossy().into_owned();
    layerfs(&store, &["image", "save", "-o", &archive, "quickstart:2"])?;
    let store2 = base.join("store2");
    layerfs(&store2, &["image", "load", "-i", &archive])?;
    layerfs(&store2, &["image", "mount", "quickstart:2", &m])?;
    let shown = (|| -> Result<(), String> {
        println!("$ cat {m}/etc/motd; ls {m}/bin");
        print!(
            "{}",
            fs::read_to_string(mnt.join("etc/motd")).map_err(e("reading motd"))?
        );
        let bin: Vec<String> = fs::read_dir(mnt.join("bin"))
            .map_err(e("listing bin"))?
            .filter_map(|d| d.ok().map(|d| d.file_name().to_string_lossy().into_owned()))
            .collect();
        println!(
            "(bin has {} entries: the deletion was committed)",
            bin.len()
        );
        Ok(())
    })();
    let unmounted = mount::unmount(&mnt);
    shown?;
    unmounted
}
