//! One command's view of the registries: the layerfs config, the user's credentials and
//! `--tls-verify`, turned into connected endpoints (kept, so a pull of several tags pings
//! once), and for `docker.io` the mirrors to try first.

use super::config::Config;
use super::credentials::{Credential, Credentials};
use super::error::{Context, Result};
use super::reference::{DOCKER_HUB, DOCKER_HUB_API};
use super::tls;
use super::transport::{Endpoint, Spec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where a repository can be fetched from, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// For messages and credentials: `docker.io`, a mirror's URL, `127.0.0.1:5000`.
    pub name: String,
    /// `host[:port]` or a mirror's base URL.
    pub address: String,
    pub mirror: bool,
}

pub struct Session {
    pub config: Config,
    creds: Credentials,
    tls_verify: Option<bool>,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl Session {
    /// `tls_verify`: `Some(true)` forces verified HTTPS, `Some(false)` allows anything,
    /// `None` follows the config (insecure registries, loopback).
    pub fn new(config: Config, creds: Credentials, tls_verify: Option<bool>) -> Session {
        Session {
            config,
            creds,
            tls_verify,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// The user's config and credentials.
    pub fn discover(tls_verify: Option<bool>) -> Result<Session> {
        Ok(Session::new(
            Config::load()?,
            Credentials::discover(),
            tls_verify,
        ))
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The sources of a registry named in a reference: its mirrors first for `docker.io`,
    /// the registry itself last.
    pub fn sources(&self, registry: &str) -> Vec<Source> {
        let mut out = Vec::new();
        if registry == DOCKER_HUB {
            for m in self.config.mirrors() {
                out.push(Source {
                    name: m.clone(),
                    address: m.clone(),
                    mirror: true,
                });
            }
        }
        out.push(origin(registry));
        out
    }

    /// The registry itself (no mirror), connected once per session.
    pub fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        self.connect(&origin(registry))
    }

    /// Connect to a source (or reuse the connection), with its stored credentials.
    pub fn connect(&self, src: &Source) -> Result<Arc<Endpoint>> {
        if let Some(ep) = self
            .endpoints
            .lock()
            .ok()
            .and_then(|g| g.get(&src.address).cloned())
        {
            return Ok(ep);
        }
        let cred = self
            .creds
            .get(&cred_key(src))
            .context(|| format!("credentials for {}", src.name))?;
        let ep = Arc::new(self.connect_with(src, cred)?);
        if let Ok(mut g) = self.endpoints.lock() {
            g.insert(src.address.clone(), ep.clone());
        }
        Ok(ep)
    }

    /// Connect with the given credentials (login checks them so), not kept.
    pub fn connect_with(&self, src: &Source, cred: Option<Credential>) -> Result<Endpoint> {
        let host = host_of(&src.address);
        let insecure = match self.tls_verify {
            Some(v) => !v,
            None => self.config.is_insecure(&host),
        };
        let material = tls::material_for(&host)?;
        Endpoint::connect(Spec {
            name: src.name.clone(),
            address: src.address.clone(),
            insecure,
            cas: material.cas,
            client_cert: material.client,
            system_roots: tls::system_roots(),
            credential: cred,
        })
    }
}

/// A registry itself as a source: `docker.io` is reached at its API host.
pub fn origin(registry: &str) -> Source {
    Source {
        name: registry.to_string(),
        address: if registry == DOCKER_HUB {
            DOCKER_HUB_API.to_string()
        } else {
            registry.to_string()
        },
        mirror: false,
    }
}

/// `host[:port]` of an address or URL.
pub fn host_of(address: &str) -> String {
    let a = address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address);
    a.split('/').next().unwrap_or(a).to_string()
}

/// The key credentials are stored under: the registry's name, a mirror's host.
fn cred_key(src: &Source) -> String {
    if src.mirror {
        host_of(&src.address)
    } else {
        src.name.clone()
    }
}
