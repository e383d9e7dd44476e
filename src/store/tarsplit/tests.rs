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
