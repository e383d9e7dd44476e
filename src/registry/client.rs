//! The distribution protocol calls on one repository of one endpoint: manifests (get, put),
//! blobs (get with resume, head, cross-repository mount, chunked upload), tags and the
//! catalog (both paginated by `Link`). Every blob and manifest fetched by digest is checked
//! against it here or by the reader's consumer.

use super::auth::query_escape;
use super::error::{Error, Result};
use super::manifest::{self, Manifest};
use super::transport::{self, BlobReader, Body, Call, Endpoint};
use crate::digest::{Digest, HashingReader};
use std::io::Read;
use std::sync::Arc;

/// Manifests larger than this are refused (the spec suggests 4 MiB).
const MANIFEST_LIMIT: u64 = 4 << 20;
/// Configs are read into memory; larger ones are refused.
const CONFIG_LIMIT: u64 = 64 << 20;

/// A manifest as fetched: parsed, and the digest of its bytes.
pub struct Fetched {
    pub manifest: Manifest,
    pub digest: Digest,
}

/// One repository (`team/app`) on an endpoint.
#[derive(Clone)]
pub struct Repo {
    pub ep: Arc<Endpoint>,
    pub path: String,
}

impl Repo {
    pub fn new(ep: Arc<Endpoint>, path: &str) -> Repo {
        Repo {
            ep,
            path: path.to_string(),
        }
    }

    pub fn pull_scope(&self) -> String {
        format!("repository:{}:pull", self.path)
    }

    pub fn push_scope(&self) -> String {
        format!("repository:{}:pull,push", self.path)
    }

    fn name(&self) -> String {
        format!("{}/{}", self.ep.name, self.path)
    }

    /// `GET /v2/NAME/manifests/REF`; a digest reference is checked against the bytes.
    pub fn manifest(&self, reference: &str) -> Result<Fetched> {
        let scope = self.pull_scope();
        let sep = if reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        let what = format!("manifest {}{sep}{reference}", self.name());
        let call = Call::new(
            "GET",
            format!("/v2/{}/manifests/{reference}", self.path),
            &scope,
        )
        .header("accept", manifest::ACCEPT)
        .what(what.clone());
        let resp = self
            .ep
            .send(&call, Body::Empty)
            .map_err(|e| not_found_says(e, &what))?;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = transport::read_small(resp, &what, MANIFEST_LIMIT)?;
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && reference != digest.to_string() {
            return Err(Error::corrupt(format!(
                "{what}: the registry sent a manifest whose digest is {digest}"
            )));
        }
        let manifest = manifest::parse(ct.as_deref(), &bytes, &what)?;
        Ok(Fetched { manifest, digest })
    }

    /// A small blob (a config) read whole and checked against its digest.
    pub fn blob_bytes(&self, d: &Digest, size: u64) -> Result<Vec<u8>> {
        let what = format!("blob {d} of {}", self.name());
        if size > CONFIG_LIMIT {
            return Err(Error::corrupt(format!(
                "{what}: {size} bytes is too large for an image config"
            )));
        }
        let mut r = self.blob(d, size, &[])?;
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|e| Error::Transport {
            what: what.clone(),
            cause: e.to_string(),
        })?;
        let got = Digest::of(&v);
        if got != *d {
            return Err(Error::corrupt(format!(
                "{what}: content digest is {got}, not {d}"
            )));
        }
        Ok(v)
    }

    /// A blob's bytes as they come (the consumer hashes them); foreign layers from `urls`
    /// when the registry does not have them.
    pub fn blob(&self, d: &Digest, size: u64, urls: &[String]) -> Result<BlobReader> {
        let what = format!("blob {d} of {}", self.name());
        let url = format!("/v2/{}/blobs/{d}", self.path);
        match BlobReader::open(self.ep.clone(), url, self.pull_scope(), what.clone(), size) {
            Ok(r) => Ok(r),
            Err(e) if e.status() == Some(404) && !urls.is_empty() => {
                let mut last = e;
                for u in urls
                    .iter()
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                {
                    match BlobReader::open(
                        self.ep.clone(),
                        u.clone(),
                        String::new(),
                        what.clone(),
                        size,
                    ) {
                        Ok(r) => return Ok(r),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Err(e) => Err(not_found_says(e, &what)),
        }
    }

    /// `HEAD /v2/NAME/blobs/DIGEST`: the size when the registry has it.
    pub fn blob_exists(&self, d: &Digest) -> Result<Option<u64>> {
        let scope = self.push_scope();
        let call = Call::new("HEAD", format!("/v2/{}/blobs/{d}", self.path), &scope)
            .what(format!("HEAD blob {d} of {}", self.name()));
        match self.ep.send(&call, Body::Empty) {
            Ok(r) => Ok(r
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .or(Some(0))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Ask the registry to link a blob it holds in repository `from` (cross-repository
    /// mount). False when it would rather have the bytes (the upload it opened is
    /// cancelled).
    pub fn mount_blob(&self, d: &Digest, from: &str) -> Result<bool> {
        let scope = format!("{} repository:{from}:pull", self.push_scope());
        let url = format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            self.path,
            query_escape(&d.to_string()),
            query_escape(from)
        );
        let call = Call::new("POST", url, &scope).what(format!("mount blob {d} from {from}"));
        let r = match self.ep.send(&call, Body::Empty) {
            Ok(r) => r,
            // Not allowed to read `from` (or it is gone): upload instead.
            Err(e) if matches!(e.status(), Some(401 | 403 | 404)) => return Ok(false),
            Err(Error::Unauthorized(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if r.status().as_u16() == 201 {
            return Ok(true);
        }
        if let Some(loc) = location(&r) {
            let loc = self.ep.url(&loc);
            let _ = self.ep.send(&Call::new("DELETE", loc, &scope), Body::Empty);
        }
        Ok(false)
    }

    /// Upload a blob: `POST` for a session, one streamed (chunked) `PATCH` of everything
    /// `data` yields, hashed on the way, then `PUT ?digest=`. `verify` sees the digest and
    /// size of what was sent before the `PUT`; its error cancels the upload.
    pub fn upload(
        &self,
        data: &mut dyn Read,
        verify: &mut dyn FnMut(&Digest, u64) -> std::result::Result<(), String>,
    ) -> Result<(Digest, u64)> {
        let scope = self.push_scope();
        let name = self.name();
        let start = Call::new("POST", format!("/v2/{}/blobs/uploads/", self.path), &scope)
            .what(format!("start an upload to {name}"));
        let r = self.ep.send(&start, Body::Empty)?;
        let loc = location(&r).ok_or_else(|| {
            Error::corrupt(format!("upload to {name}: the registry gave no Location"))
        })?;
        let mut h = HashingReader::new(data);
        let patch = Call::new("PATCH", self.ep.url(&loc), &scope)
            .header("content-type", "application/octet-stream")
            .what(format!("upload to {name}"));
        let r = self.ep.send(&patch, Body::Stream(&mut h))?;
        let loc = location(&r).unwrap_or(loc);
        let (digest, size) = h.finish();
        if let Err(why) = verify(&digest, size) {
            let _ = self
                .ep
                .send(&Call::new("DELETE", self.ep.url(&loc), &scope), Body::Empty);
            return Err(Error::corrupt(format!(
                "upload of {digest} to {name}: {why}"
            )));
        }
        let mut url = self.ep.url(&loc);
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", query_escape(&digest.to_string())));
        let put = Call::new("PUT", url, &scope)
            .header("content-length", "0")
            .what(format!("finish the upload of {digest} to {name}"));
        self.ep.send(&put, Body::Empty)?;
        Ok((digest, size))
    }

    /// Upload a small blob held in memory (a config), unless the registry has it.
    pub fn upload_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if self.blob_exists(&d)?.is_some() {
            return Ok(d);
        }
        let mut r = bytes;
        self.upload(&mut r, &mut |got, _| {
            if *got == d {
                Ok(())
            } else {
                Err(format!("the data hashed to {got}, not {d}"))
            }
        })?;
        Ok(d)
    }

    /// `PUT /v2/NAME/manifests/REF`; the digest of what was put.
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<Digest> {
        let scope = self.push_scope();
        let call = Call::new(
            "PUT",
            format!("/v2/{}/manifests/{reference}", self.path),
            &scope,
        )
        .header("content-type", media_type)
        .what(format!("put manifest {}:{reference}", self.name()));
        self.ep.send(&call, Body::Bytes(bytes))?;
        Ok(Digest::of(bytes))
    }

    /// Every tag of the repository (`/tags/list`, following `Link`).
    pub fn tags(&self) -> Result<Vec<String>> {
        let scope = self.pull_scope();
        let first = format!("/v2/{}/tags/list", self.path);
        let what = format!("tags of {}", self.name());
        let mut out = Vec::new();
        paginate(&self.ep, &first, &scope, &what, |v| {
            let tags = v
                .get("tags")
                .and_then(|t| t.as_array())
                .cloned()
                .unwrap_or_default();
            out.extend(tags.iter().filter_map(|t| t.as_str().map(str::to_string)));
        })
        .map_err(|e| not_found_says(e, &what))?;
        Ok(out)
    }
}

/// Every repository of a registry (`/v2/_catalog`, following `Link`), at most `limit`.
pub fn catalog(ep: &Arc<Endpoint>, limit: usize) -> Result<Vec<String>> {
    let what = format!("catalog of {}", ep.name);
    // Distribution refuses a page size above its `catalog.maxentries` (even the default
    // one, when `n` is left out): halve it until the registry takes it.
    let mut n = 1000;
    loop {
        let mut out = Vec::new();
        let first = format!("/v2/_catalog?n={n}");
        let r = paginate(ep, &first, "registry:catalog:*", &what, |v| {
            let repos = v
                .get("repositories")
                .and_then(|t| t.as_array())
                .cloned()
                .unwrap_or_default();
            out.extend(repos.iter().filter_map(|t| t.as_str().map(str::to_string)));
        });
        match r {
            Err(Error::Status {
                status: 400,
                detail,
                ..
            }) if detail.contains("PAGINATION_NUMBER_INVALID") && n > 1 => {
                n /= 2;
            }
            Err(e) => return Err(e),
            Ok(()) => {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }
}

/// GET `first`, give each page's JSON to `each`, and follow `Link: <next>; rel="next"`.
fn paginate(
    ep: &Arc<Endpoint>,
    first: &str,
    scope: &str,
    what: &str,
    mut each: impl FnMut(&serde_json::Value),
) -> Result<()> {
    let mut next = Some(first.to_string());
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > 10_000 {
            return Err(Error::corrupt(format!("{what}: too many pages")));
        }
        let call = Call::new("GET", url, scope).what(what.to_string());
        let resp = ep.send(&call, Body::Empty)?;
        next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let body = transport::read_small(resp, what, 64 << 20)?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt(format!("{what}: the answer is not JSON ({e})")))?;
        each(&v);
    }
    Ok(())
}

/// `</v2/_catalog?last=x&n=100>; rel="next"` -> the URL.
fn next_link(h: &str) -> Option<String> {
    h.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn location(r: &ureq::http::Response<ureq::Body>) -> Option<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A 404 said the way docker says it: the thing is not there (or not readable by us).
fn not_found_says(e: Error, what: &str) -> Error {
    if e.status() == Some(404) {
        let detail = match e.root() {
            Error::Status { detail, .. } if !detail.is_empty() => format!(" ({detail})"),
            _ => String::new(),
        };
        Error::Status {
            what: format!("{what}: not found: the repository does not exist or may require login"),
            status: 404,
            detail: detail
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .to_string(),
        }
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn links() {
        assert_eq!(
            super::next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(super::next_link(r#"<x>; rel="prev""#), None);
    }
}
