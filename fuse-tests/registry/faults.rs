//! Every way a pull can go wrong, each followed by the same checks: exit 1, one `layerfs: `
//! line naming the reference and the registry, the store unchanged (no image, no layer, no
//! layer dir, nothing in tmp/); and where it makes sense the next pull succeeds. Missing
//! tag or repository, a dead port, a port that is no registry, corrupt blobs, a wrong
//! diffID, schema1, a cut transfer, kill -9 in the middle, and two pulls at once.

use super::cli::{Lf, Out, assert_failure};
use super::fixture::{self, Served, check_image};
use super::images::{self, Comp, Format, Image, Platform};
use super::proxy::{Fault, Junk, Proxy};
use super::server::{Opts, Registry, free_port};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The failure shape, naming every word in `names`, with the store as it was.
#[track_caller]
fn failed_cleanly(lf: &Lf, o: &Out, before: &super::cli::StoreState, what: &str, names: &[&str]) {
    assert_failure(o, what);
    for n in names {
        assert!(
            o.stderr.contains(n),
            "{what}: the error names {n}: {}",
            o.stderr
        );
    }
    lf.state().assert_unchanged(before, what);
}

#[test]
fn missing_tag_and_missing_repository() {
    let s = Served::sample("fault-missing");
    let lf = Lf::new();
    let before = lf.state();
    let host = s.reg.host();
    for name in ["team/app:nope", "no/such:v1"] {
        let full = s.r(name);
        let o = lf.run(&["pull", &full]);
        failed_cleanly(
            &lf,
            &o,
            &before,
            &format!("pull {full}"),
            &[&host, name.split(':').next().expect("repo")],
        );
        let low = o.stderr.to_lowercase();
        assert!(
            low.contains("not found") || low.contains("unknown"),
            "says what is missing: {}",
            o.stderr
        );
    }
    let o = lf.run(&[
        "pull",
        &s.r("team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
    ]);
    failed_cleanly(
        &lf,
        &o,
        &before,
        "pull of an unknown digest",
        &[&host, "team/app"],
    );
}

#[test]
fn dead_port_and_non_registry_port() {
    let lf = Lf::new();
    let before = lf.state();
    let dead = format!("127.0.0.1:{}", free_port());
    let o = lf.run(&["pull", &format!("{dead}/team/app:v1")]);
    failed_cleanly(
        &lf,
        &o,
        &before,
        "pull from a dead port",
        &[&dead, "team/app"],
    );
    assert!(
        o.stderr.to_lowercase().contains("refused"),
        "says why: {}",
        o.stderr
    );
    let junk = Junk::start();
    let o = lf.run(&["pull", &format!("{}/team/app:v1", junk.host())]);
    failed_cleanly(
        &lf,
        &o,
        &before,
        "pull from a port that is no registry",
        &[&junk.host(), "team/app"],
    );
    assert!(junk.connections() > 0, "it did try");
}

/// Replace what the registry stores for `digest` with `bytes` (its own files, not ours).
fn corrupt(reg: &Registry, digest: &str, bytes: &[u8]) -> Vec<u8> {
    let p = reg.blob_path(digest);
    let old = std::fs::read(&p).expect("blob in the registry's storage");
    std::fs::write(&p, bytes).expect("overwrite blob");
    old
}

/// Serve `bad` for blob `digest`, pull (which must fail cleanly and name the blob), restore.
fn pull_corrupt(s: &Served, lf: &Lf, digest: &str, bad: &[u8], what: &str) -> Out {
    let before = lf.state();
    let orig = corrupt(&s.reg, digest, bad);
    let o = lf.run(&["pull", &s.r("team/app:v1")]);
    std::fs::write(s.reg.blob_path(digest), orig).expect("restore the blob");
    failed_cleanly(lf, &o, &before, what, &[&s.reg.host(), "team/app"]);
    assert!(
        o.stderr.contains(&digest[7..19]),
        "{what}: names the blob {digest}: {}",
        o.stderr
    );
    o
}

#[test]
fn blobs_whose_digest_is_wrong() {
    let s = Served::sample("fault-digest");
    let lf = Lf::new();
    let layer = s.img.layers[1].clone();
    // A valid gzip stream of another tar (another size).
    let other = Comp::Gzip.compress(&images::upper_layer("something else"));
    pull_corrupt(&s, &lf, &layer.digest, &other, "pull of a replaced layer");
    // The same size, one byte changed in the middle.
    let mut flipped = layer.data.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    pull_corrupt(
        &s,
        &lf,
        &layer.digest,
        &flipped,
        "pull of a layer with a flipped byte",
    );
    // A config that is not the one the manifest names (shorter, then same size).
    let cfg = s.img.config.clone();
    let small =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    pull_corrupt(&s, &lf, &cfg.digest, small, "pull of a replaced config");
    let mut same = cfg.data.clone();
    let at = same
        .iter()
        .position(|&b| b == b'/')
        .expect("a / in the config");
    same[at] = b'_';
    pull_corrupt(
        &s,
        &lf,
        &cfg.digest,
        &same,
        "pull of a config with a changed byte",
    );
    // Repaired: the next pull works.
    fixture::pull(&lf, &s.r("team/app:v1"));
    check_image(&lf, &s.r("team/app"), Some("v1"), &s.img, &s.digest);
    lf.st.assert_clean();
}

/// Uncompressed layers: another tar of the very same size decompresses fine and fits the
/// manifest's size; only verifying the digest catches it.
#[test]
fn uncompressed_layer_of_the_right_size_and_wrong_digest() {
    let (a, b) = ("fault-raw-aaaa", "fault-raw-bbbb");
    let img = Image::new(
        &[images::base_layer(a), images::upper_layer(a)],
        Comp::Plain,
        Platform::host(),
        a,
    );
    let s = Served::new(Registry::plain(), img, "team/app:v1", Format::Oci);
    let other = images::upper_layer(b);
    let layer = s.img.layers[1].clone();
    assert_eq!(other.len(), layer.data.len(), "same size");
    assert_ne!(images::sha256(&other), layer.digest);
    let lf = Lf::new();
    let o = pull_corrupt(
        &s,
        &lf,
        &layer.digest,
        &other,
        "pull of a same-size wrong layer",
    );
    let low = o.stderr.to_lowercase();
    assert!(
        low.contains("digest") || low.contains("diffid"),
        "says the digest is wrong: {}",
        o.stderr
    );
    fixture::pull(&lf, &s.r("team/app:v1"));
    lf.st.assert_clean();
}

#[test]
fn layer_that_does_not_match_its_diff_id() {
    let reg = Registry::plain();
    let tmp = tempfile::tempdir().expect("tmp");
    let good = Image::sample("fault-diffid", Comp::Gzip);
    let mut diff_ids = good.diff_ids.clone();
    diff_ids[1] = images::sha256(b"not the tar");
    let bad = Image::assemble(
        good.layers.clone(),
        diff_ids,
        Platform::host(),
        "fault-diffid",
    );
    images::push(&reg, tmp.path(), &bad, "team/bad:v1", Format::Oci);
    let lf = Lf::new();
    let before = lf.state();
    let o = lf.run(&["pull", &format!("{}/team/bad:v1", reg.host())]);
    failed_cleanly(
        &lf,
        &o,
        &before,
        "pull with a wrong diffID",
        &[&reg.host(), "team/bad"],
    );
}

#[test]
fn schema1_is_refused_clearly() {
    let reg = Registry::start(Opts {
        schema1: true,
        ..Opts::default()
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let img = Image::sample("fault-schema1", Comp::Gzip);
    let dir = images::layout_of(tmp.path(), &img);
    let a: Vec<String> = vec![
        "copy".into(),
        "--quiet".into(),
        "--dest-tls-verify=false".into(),
        "--format=v2s1".into(),
        format!("oci:{}:t", dir.display()),
        format!("docker://{}/old/app:v1", reg.host()),
    ];
    let o = images::skopeo(&a);
    assert_eq!(o.code, 0, "skopeo push of schema1: {}", o.stderr);
    let lf = Lf::new();
    let before = lf.state();
    let o = lf.run(&["pull", &format!("{}/old/app:v1", reg.host())]);
    failed_cleanly(
        &lf,
        &o,
        &before,
        "pull of schema1",
        &[&reg.host(), "old/app"],
    );
    assert!(
        o.stderr.to_lowercase().contains("schema"),
        "says schema1: {}",
        o.stderr
    );
}

/// The pull as a child process, for tests that act while it runs.
fn spawn_pull(lf: &Lf, name: &str) -> Child {
    lf.cmd(&["pull", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pull")
}

/// Wait for the child with a limit; a pull still running after it is a hang (killed).
fn finish(c: Child, limit: Duration, what: &str) -> Out {
    let pid = c.id();
    let end = Instant::now() + limit;
    let waiter = std::thread::spawn(move || c.wait_with_output());
    while !waiter.is_finished() {
        if Instant::now() > end {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let _ = waiter.join();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    super::cli::out(waiter.join().expect("join").expect("wait"))
}

#[test]
fn cut_transfer_resumes_or_fails_cleanly() {
    let s = Served::sample("fault-cut");
    let layer = s.img.layers[0].digest.clone();
    // Cut once: a retry (with Range, as the design says) must finish the image.
    let p = Proxy::start(
        s.reg.port(),
        Fault::Cut {
            digest: layer.clone(),
            after: 4000,
            times: 1,
        },
    );
    let lf = Lf::new();
    let name = format!("{}/team/app:v1", p.host());
    let o = finish(
        spawn_pull(&lf, &name),
        Duration::from_secs(120),
        "pull through a cut",
    );
    let blob_gets: Vec<_> = p
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&layer))
        .collect();
    if o.code == 0 {
        assert_eq!(fixture::inspect(&lf, &name)["Id"], s.img.id());
        lf.st.assert_clean();
        assert!(
            blob_gets.len() >= 2,
            "fetched again after the cut: {blob_gets:?}"
        );
        eprintln!(
            "resumed: {:?}",
            blob_gets
                .iter()
                .map(|r| r.range.clone())
                .collect::<Vec<_>>()
        );
        assert!(
            blob_gets[1..].iter().any(|r| r.range.is_some()),
            "resumed with a Range request: {blob_gets:?}"
        );
    } else {
        failed_cleanly(
            &lf,
            &o,
            &Lf::new().state(),
            "pull through a cut",
            &[&p.host(), "team/app"],
        );
    }
    // Cut every time: retries end, the failure is clean.
    let p = Proxy::start(
        s.reg.port(),
        Fault::Cut {
            digest: layer.clone(),
            after: 4000,
            times: 1000,
        },
    );
    let lf = Lf::new();
    let before = lf.state();
    let name = format!("{}/team/app:v1", p.host());
    let o = finish(
        spawn_pull(&lf, &name),
        Duration::from_secs(300),
        "pull through a cut every time",
    );
    failed_cleanly(
        &lf,
        &o,
        &before,
        "pull through a cut every time",
        &[&p.host(), "team/app"],
    );
    // Straight from the registry it works.
    fixture::pull(&lf, &s.r("team/app:v1"));
    lf.st.assert_clean();
}

/// Wait until the proxy holds one of the child's transfers; the child ending first (or a
/// minute passing) fails the test with what it printed.
fn wait_held(p: &Proxy, c: &mut Child, what: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    while !p.wait_stalled(1, Duration::from_millis(100)) {
        if let Ok(Some(status)) = c.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("{what}: the pull ended ({status}) before it reached a layer: {err}");
        }
        assert!(
            Instant::now() < end,
            "{what}: no layer transfer within 60 s"
        );
    }
}

/// An image whose layers are big enough to be in flight when the test acts.
fn big_served(label: &str) -> Served {
    let big = |seed: u64| {
        images::Tar::new()
            .dir("data", 0o755)
            .file(
                &format!("data/blob-{seed}"),
                &images::noise(seed, 3 << 20),
                0o644,
            )
            .finish()
    };
    let img = Image::new(&[big(11), big(12)], Comp::Gzip, Platform::host(), label);
    Served::new(Registry::plain(), img, "team/big:v1", Format::Oci)
}

/// A proxy holding every layer of `s` after its first 64 KiB.
fn hold_all(s: &Served) -> Proxy {
    Proxy::start(
        s.reg.port(),
        Fault::Stall {
            digests: s.img.layers.iter().map(|l| l.digest.clone()).collect(),
            after: 64 << 10,
        },
    )
}

#[test]
fn kill_9_mid_pull_then_pull_again() {
    let s = big_served("fault-kill");
    let p = hold_all(&s);
    let lf = Lf::new();
    let before = lf.state();
    let name = format!("{}/team/big:v1", p.host());
    let mut c = spawn_pull(&lf, &name);
    wait_held(&p, &mut c, "kill -9 mid-pull");
    let both = p.wait_stalled(2, Duration::from_secs(30));
    assert!(
        both,
        "the two layers download at the same time (default 3 at once)"
    );
    c.kill().expect("kill -9");
    c.wait().expect("reap");
    p.release();
    // Every layer was in flight: nothing may have been committed.
    let now = lf.state();
    assert_eq!(now.images, before.images, "no image after kill -9");
    assert_eq!(now.layers, before.layers, "no layer after kill -9");
    assert_eq!(
        now.layer_dirs, before.layer_dirs,
        "no layer dir after kill -9"
    );
    let o = lf.run(&["images", "--format", "json"]);
    assert!(!o.stdout.contains("team/big"), "{}", o.stdout);
    // The next pull succeeds and leaves nothing behind (stale staging swept).
    let o = finish(
        spawn_pull(&lf, &name),
        Duration::from_secs(120),
        "pull after kill -9",
    );
    assert_eq!(o.code, 0, "pull after kill -9: {}", o.stderr);
    assert_eq!(fixture::inspect(&lf, &name)["Id"], s.img.id());
    lf.st.assert_clean();
}

#[test]
fn two_pulls_at_once() {
    let s = big_served("fault-two");
    let p = hold_all(&s);
    let lf = Lf::new();
    let name = format!("{}/team/big:v1", p.host());
    let mut a = spawn_pull(&lf, &name);
    wait_held(&p, &mut a, "two pulls at once");
    let b = spawn_pull(&lf, &name);
    // Let B get as far as it can on its own (its manifest request), then let A go on.
    let manifests = |r: &super::proxy::Seen| r.method == "GET" && r.path.contains("/manifests/");
    let seen_b = p.wait_log(Duration::from_secs(10), |reqs| {
        reqs.iter().filter(|r| manifests(r)).count() >= 2
    });
    eprintln!("pull B fetched its manifest while A was held: {seen_b}");
    p.release();
    let oa = finish(a, Duration::from_secs(120), "pull A");
    let ob = finish(b, Duration::from_secs(120), "pull B");
    assert_eq!(oa.code, 0, "pull A: {}", oa.stderr);
    assert_eq!(ob.code, 0, "pull B: {}", ob.stderr);
    assert_eq!(lf.st.image_count(), 1);
    assert_eq!(lf.st.layerdb_count(), 2, "each layer once");
    assert_eq!(fixture::inspect(&lf, &name)["Id"], s.img.id());
    lf.st.assert_clean();
}
