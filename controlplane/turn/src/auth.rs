//! Long-term credentials (RFC 8489 §9.2): static users and TURN REST API
//! ephemeral credentials. TODO(helper H2).

/// What the operator configured.
#[derive(Debug, Clone, Default)]
pub struct CredentialsConfig {
    /// `(username, password)` pairs (`--user NAME:PASSWORD`).
    pub users: Vec<(String, String)>,
    /// REST API shared secrets (`--auth-secret`); any of them validates.
    pub secrets: Vec<String>,
}

/// Keys derived from [`CredentialsConfig`] for one realm.
#[derive(Debug, Clone)]
pub struct Credentials {}

impl Credentials {
    pub fn new(config: &CredentialsConfig, realm: &str) -> Self {
        let _ = (config, realm);
        todo!()
    }
}
