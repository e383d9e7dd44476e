//! TEMPORARY (replaced by wip-creds at merge): the credential type only.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub identity_token: Option<String>,
}
