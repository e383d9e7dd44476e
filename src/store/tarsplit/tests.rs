//! Unit tests of the tar reader, the tar-split record and reassembly.

use super::*;
use std::collections::HashMap;

fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "etc/", &[][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o4755);
    h.set_size(5);
    h.set_uid(1000);
    b.append_data(&mut h, "etc/hello", &b"hello"[..]).unwrap();
    let long = format!("etc/{}", "x".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(700);
    b.append_data(&mut h, &long, &vec![7u8; 700][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "etc/link", "hello").unwrap();
    b.append_pax_extensions([("SCHILY.xattr.user.a", &b"v"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o600);
    h.set_size(0);
    b.append_data(&mut h, "etc/empty", &[][..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn base64_round_trip() {
    for n in 0..20 {
        let d: Vec<u8> = (0..n).map(|i| (i * 37 + 5) as u8).collect();
        assert_eq!(base64_decode(&base64_encode(&d)).unwrap(), d);
    }
    assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
}

#[test]
fn parse_and_reassemble_byte_identical() {
    let tar = sample_tar();
    let mut r = TarReader::new(&tar[..], Recorder::new(Vec::new()));
    let mut files: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut seen = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        seen.push((
            String::from_utf8_lossy(&e.path).into_owned(),
            e.kind,
            e.mode,
        ));
        if e.kind == Kind::File {
            let mut c = Vec::new();
            r.copy_content(&mut c).unwrap();
            files.insert(e.path.clone(), c);
        }
        if e.path == b"etc/empty" {
            assert_eq!(e.xattrs, vec![("user.a".to_string(), b"v".to_vec())]);
        }
    }
    let (rec, n, _) = r.finish().unwrap();
    assert_eq!(n, tar.len() as u64);
    assert_eq!(seen[1], ("etc/hello".into(), Kind::File, 0o4755));
    assert_eq!(seen[2].0.len(), 154);
    let mut out = Vec::new();
    reassemble(
        &rec[..],
        |name| Ok(Box::new(io::Cursor::new(files[name].clone())) as Box<dyn Read>),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, tar);
}

#[test]
fn truncated_and_corrupt() {
    let tar = sample_tar();
    let cut = &tar[..1100];
    let mut r = TarReader::new(cut, Recorder::new(Vec::new()));
    let mut err = None;
    loop {
        match r.next_entry() {
            Ok(Some(e)) if e.kind == Kind::File => {
                if let Err(x) = r.copy_content(&mut io::sink()) {
                    err = Some(x);
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(x) => {
                err = Some(x);
                break;
            }
        }
    }
    assert!(err.unwrap().to_string().contains("truncated"));
    let mut bad_tar = tar.clone();
    bad_tar[10] ^= 0x55;
    let mut r = TarReader::new(&bad_tar[..], Recorder::new(Vec::new()));
    assert!(r.next_entry().unwrap_err().to_string().contains("checksum"));
}

#[test]
fn crc64_is_gos_iso_crc() {
    let mut c = Crc64::new();
    c.update(b"123456789");
    assert_eq!(crate::digest::hex(&c.sum()), "b90956c775a41001");
    let mut split = Crc64::new();
    split.update(b"1234");
    split.update(b"56789");
    assert_eq!(split.sum(), c.sum());
    assert_eq!(Crc64::new().sum(), [0u8; 8]);
}

#[test]
fn our_record_carries_docker_checksums() {
    let tar = sample_tar();
    let mut r = TarReader::new(&tar[..], Recorder::new(Vec::new()));
    while let Some(e) = r.next_entry().unwrap() {
        if e.kind == Kind::File {
            r.copy_content(&mut io::sink()).unwrap();
        }
    }
    let (rec, _, _) = r.finish().unwrap();
    let text = String::from_utf8(rec).unwrap();
    let mut files = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == 1 {
            files += 1;
            let mut c = Crc64::new();
            c.update(if v["size"] == 5 {
                b"hello"
            } else {
                &[7u8; 700][..]
            });
            assert_eq!(v["payload"].as_str().unwrap(), base64_encode(&c.sum()));
        }
    }
    assert_eq!(files, 2, "{text}");
}

/// Split a plain ustar tar (no PAX / long names) the way dockerd's tar-split does: a segment
/// with everything up to and including each header, a type-1 line for every header (size
/// and checksum only with content, `"payload":null` otherwise), the end blocks, then an
/// empty segment as older tar-split versions add.
fn docker_record(tar: &[u8]) -> (String, HashMap<Vec<u8>, Vec<u8>>) {
    let mut lines = Vec::new();
    let mut files = HashMap::new();
    let mut seg: Vec<u8> = Vec::new();
    let mut off = 0;
    let push = |lines: &mut Vec<String>, v: serde_json::Value| {
        let mut v = v;
        v["position"] = lines.len().into();
        lines.push(v.to_string());
    };
    while off + 512 <= tar.len() && tar[off..off + 512].iter().any(|b| *b != 0) {
        let h = &tar[off..off + 512];
        seg.extend_from_slice(h);
        off += 512;
        let name: Vec<u8> = h[..100].iter().copied().take_while(|b| *b != 0).collect();
        let size_s: String = h[124..136]
            .iter()
            .take_while(|b| **b != 0 && **b != b' ')
            .map(|b| *b as char)
            .collect();
        let size = u64::from_str_radix(&size_s, 8).unwrap();
        push(
            &mut lines,
            serde_json::json!({"type": 2, "payload": base64_encode(&seg)}),
        );
        seg.clear();
        let key = if std::str::from_utf8(&name).is_ok() {
            "name"
        } else {
            "name_raw"
        };
        let shown = match std::str::from_utf8(&name) {
            Ok(n) => n.to_string(),
            Err(_) => base64_encode(&name),
        };
        if size == 0 {
            push(
                &mut lines,
                serde_json::json!({"type": 1, key: shown, "payload": null}),
            );
        } else {
            let data = tar[off..off + size as usize].to_vec();
            let mut c = Crc64::new();
            c.update(&data);
            push(
                &mut lines,
                serde_json::json!({"type": 1, key: shown, "size": size, "payload": base64_encode(&c.sum())}),
            );
            files.insert(name, data);
            off += size as usize;
            let pad = size.div_ceil(512) * 512 - size;
            seg.extend_from_slice(&tar[off..off + pad as usize]);
            off += pad as usize;
        }
    }
    seg.extend_from_slice(&tar[off..]);
    push(
        &mut lines,
        serde_json::json!({"type": 2, "payload": base64_encode(&seg)}),
    );
    push(&mut lines, serde_json::json!({"type": 2, "payload": ""}));
    (lines.join("\n") + "\n", files)
}

fn dot_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &[u8], kind: tar::EntryType, data: &[u8], link: &str| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add(b"./", tar::EntryType::Directory, b"", "");
    add(b"./etc/", tar::EntryType::Directory, b"", "");
    add(
        b"./etc/passwd",
        tar::EntryType::Regular,
        b"root:x:0:0\n",
        "",
    );
    add(b"./etc/empty", tar::EntryType::Regular, b"", "");
    add(b"./etc/hard", tar::EntryType::Link, b"", "./etc/passwd");
    add(b"./bin", tar::EntryType::Directory, b"", "");
    add(b"./bin/sh", tar::EntryType::Symlink, b"", "/bin/busybox");
    add(b"etc/a&b<c>", tar::EntryType::Regular, &[1u8; 513], "");
    add(b"caf\xe9", tar::EntryType::Regular, b"latin-1 name", "");
    add(b"./etc/.wh.gone", tar::EntryType::Regular, b"", "");
    b.into_inner().unwrap()
}

#[test]
fn reassembles_dockers_record_reading_only_content() {
    let tar = dot_tar();
    let (rec, files) = docker_record(&tar);
    assert!(rec.contains(r#""name":"./","payload":null"#), "{rec}");
    assert!(rec.contains("name_raw"), "{rec}");
    let mut opened = Vec::new();
    let mut out = Vec::new();
    reassemble(
        rec.as_bytes(),
        |name| {
            opened.push(name.to_vec());
            match files.get(name) {
                Some(d) => Ok(Box::new(io::Cursor::new(d.clone())) as Box<dyn Read>),
                None => Err(io::Error::other("opened an entry without content")),
            }
        },
        &mut out,
    )
    .unwrap();
    assert!(out == tar, "the rebuilt tar differs");
    opened.sort();
    let want: Vec<&[u8]> = vec![b"./etc/passwd", b"caf\xe9", b"etc/a&b<c>"];
    assert_eq!(opened, want);
}

#[test]
fn reassembly_checks_dockers_checksum() {
    let tar = dot_tar();
    let (rec, files) = docker_record(&tar);
    type Tamper<'a> = &'a dyn Fn(&[u8], &[u8]) -> Vec<u8>;
    let run = |tamper: Tamper| {
        reassemble(
            rec.as_bytes(),
            |name| {
                let d = tamper(name, &files[name]);
                Ok(Box::new(io::Cursor::new(d)) as Box<dyn Read>)
            },
            &mut Vec::new(),
        )
    };
    let e = run(&|n, d| {
        let mut d = d.to_vec();
        if n == b"./etc/passwd" {
            d[0] = b'R';
        }
        d
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("./etc/passwd") && e.contains("checksum"), "{e}");
    let e = run(&|n, d| {
        if n == b"etc/a&b<c>" {
            d[..100].to_vec()
        } else {
            d.to_vec()
        }
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("etc/a&b<c>") && e.contains("shorter than recorded (100 of 513 bytes)"),
        "{e}"
    );
    // A record line that is not Docker's shape is refused, not guessed at.
    let bad = r#"{"type":1,"name":"x","size":3,"payload":"AAAA","position":0}"#;
    let e = reassemble(bad.as_bytes(), |_| unreachable!(), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("checksum of \"x\" has 3 bytes"), "{e}");
}
