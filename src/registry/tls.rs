//! TEMPORARY (wip-creds replaces it).
use super::error::Result;
pub struct TlsMaterial {
    pub cas: Vec<ureq::tls::Certificate<'static>>,
    pub client: Option<ureq::tls::ClientCert>,
}
pub fn material_for(_host: &str) -> Result<TlsMaterial> {
    Ok(TlsMaterial {
        cas: vec![],
        client: None,
    })
}
pub fn system_roots() -> Vec<ureq::tls::Certificate<'static>> {
    vec![]
}
