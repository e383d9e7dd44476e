//! Other tools read what we write and we read what they write (skopeo, when installed).

use super::build;
use super::util::*;
use std::process::Command;

fn skopeo() -> bool {
    let ok = Command::new("skopeo")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: skopeo is not installed");
    }
    ok
}

fn skopeo_layers(transport: &str) -> Vec<String> {
    let o = out(Command::new("skopeo")
        .args(["inspect", transport])
        .output()
        .expect("skopeo"));
    assert_eq!(o.code, 0, "skopeo inspect {transport}: {}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    v["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|l| l.as_str().expect("str").to_string())
        .collect()
}

#[test]
fn skopeo_reads_every_save_format() {
    if !skopeo() {
        return;
    }
    let st = St::new();
    let (a, b) = build::sample();
    let p = st.path("in.tar");
    std::fs::write(&p, build::docker_archive(&[&a, &b])).expect("write");
    st.ok(&["image", "load", "-i", p.to_str().expect("utf8")]);
    let da = st.path("da.tar");
    let oa = st.path("oa.tar");
    let od = st.path("od");
    st.ok(&[
        "image",
        "save",
        "-o",
        da.to_str().expect("utf8"),
        "sample:1",
    ]);
    st.ok(&[
        "image",
        "save",
        "--format",
        "oci-archive",
        "-o",
        oa.to_str().expect("utf8"),
        "sample:1",
    ]);
    st.ok(&[
        "image",
        "save",
        "--format",
        "oci-dir",
        "-o",
        od.to_str().expect("utf8"),
        "sample:1",
    ]);
    let want = a.diff_ids();
    assert_eq!(
        skopeo_layers(&format!("docker-archive:{}", da.display())),
        want
    );
    assert_eq!(
        skopeo_layers(&format!("oci-archive:{}", oa.display())),
        want
    );
    assert_eq!(skopeo_layers(&format!("oci:{}", od.display())), want);
}

#[test]
fn we_read_what_skopeo_writes() {
    if !skopeo() {
        return;
    }
    let st = St::new();
    let (a, _) = build::sample();
    let src = st.path("src");
    build::oci_dir(&src, &[&a], build::Comp::Gzip);
    for (dest, name) in [
        ("docker-archive:{}/s.tar:copied:v1", "s.tar"),
        ("oci-archive:{}/s2.tar:copied:v1", "s2.tar"),
    ] {
        let dest = dest.replace("{}", st.dir.path().to_str().expect("utf8"));
        let o = out(Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                &format!("oci:{}:sample:1", src.display()),
                &dest,
            ])
            .output()
            .expect("skopeo"));
        if o.code != 0 && o.stderr.contains("zstd") {
            eprintln!("skipped: this skopeo cannot decompress zstd: {}", o.stderr);
            return;
        }
        assert_eq!(o.code, 0, "skopeo copy: {}", o.stderr);
        let st2 = St::new();
        let out = st2.ok(&["image", "load", "-i", st.path(name).to_str().expect("utf8")]);
        assert!(out.contains("Loaded image: copied:v1"), "{out}");
        assert_eq!(
            inspect(&st2, "copied:v1")["RootFS"]["Layers"],
            serde_json::json!(a.diff_ids())
        );
        st2.assert_clean();
    }
}
