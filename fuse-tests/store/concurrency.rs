//! Two loads at once, and kill -9 in the middle of a load.

use super::build::{self, Comp};
use super::util::*;
use std::io::Write;
use std::process::Stdio;

#[test]
fn two_loads_of_the_same_image_at_once() {
    let st = St::new();
    let (a, b) = build::sample();
    let p = st.path("s.tar");
    std::fs::write(&p, build::docker_archive(&[&a, &b])).expect("write");
    let p = p.to_str().expect("utf8").to_string();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            st.cmd(&["image", "load", "-i", &p])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for k in kids {
        let o = out(k.wait_with_output().expect("wait"));
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains("Loaded image: sample:1"));
    }
    assert_eq!(st.image_count(), 2);
    assert_eq!(st.layerdb_count(), 3);
    st.assert_clean();
    assert_eq!(inspect(&st, "sample:latest")["Id"], a.id());
}

#[test]
fn kill_9_during_load_leaves_no_partial_image() {
    let st = St::new();
    let (a, _) = build::sample();
    let d = st.path("oci-fifo");
    build::oci_dir(&d, &[&a], Comp::None);
    // The base layer blob becomes a FIFO we feed by hand: the load blocks half-way.
    let blob = d.join("blobs/sha256").join(sha(&a.layers[0]));
    std::fs::remove_file(&blob).expect("rm");
    let c = std::ffi::CString::new(blob.to_str().expect("utf8")).expect("cstr");
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let mut child = st
        .cmd(&["image", "load", "-i", d.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)
        .expect("open fifo");
    let half = a.layers[0].len() / 2;
    w.write_all(&a.layers[0][..half]).expect("feed");
    w.flush().expect("flush");
    // Wait until extraction has visibly started in staging.
    let tmp = st.root.join("tmp");
    let started = (0..1000).any(|_| {
        let busy = std::fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.path().join("cache/diff/bin").exists())
            })
            .unwrap_or(false);
        if !busy {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        busy
    });
    assert!(started, "extraction never started");
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    drop(w);
    assert_eq!(st.image_count(), 0);
    assert_eq!(st.layerdb_count(), 0);
    assert_eq!(st.ok(&["images", "-q"]), "");
    // The next writer cleans up and works.
    let p = st.path("ok.tar");
    std::fs::write(&p, build::docker_archive(&[&a])).expect("write");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    assert_eq!(inspect(&st, "sample:1")["Id"], a.id());
    st.assert_clean();
}
