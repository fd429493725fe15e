//! Bearer-token authentication: a request without a valid token gets UNAUTHENTICATED
//! and never reaches the service.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// Why tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the token file {path}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} holds no token; leave it out to run without authentication")]
    NoTokens { what: String },
}

/// The set of accepted bearer tokens. Empty means authentication is off.
#[derive(Clone, Default)]
pub struct Tokens(Vec<String>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret: only how many there are.
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Tokens from a comma-separated list; blanks are ignored.
    pub fn from_list(list: &str) -> Self {
        Tokens(
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    /// Tokens from a file, one per line; blank lines and `#` comments are ignored.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::TokenFile {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Tokens(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
        ))
    }

    pub fn extend(&mut self, other: Tokens) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `candidate` is one of the tokens. Digests of equal length are compared in
    /// constant time, so neither a token's content nor its length leaks through timing.
    fn accepts(&self, candidate: &[u8]) -> bool {
        let candidate = Sha256::digest(candidate);
        let mut found = subtle::Choice::from(0);
        for token in &self.0 {
            found |= Sha256::digest(token.as_bytes())
                .as_slice()
                .ct_eq(candidate.as_slice());
        }
        found.into()
    }
}

/// A tonic interceptor that checks `authorization: Bearer <token>`.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    tokens: Arc<Tokens>,
}

impl Auth {
    pub fn new(tokens: Tokens) -> Self {
        Auth {
            tokens: Arc::new(tokens),
        }
    }

    /// No authentication: every request passes. For loopback use and tests.
    pub fn disabled() -> Self {
        Auth::default()
    }

    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Check one request's metadata.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if !self.is_enabled() {
            return Ok(());
        }
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` header",
            ));
        };
        let value = value.as_bytes();
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("authorization header is not `Bearer <token>`")
            })?;
        if self.tokens.accepts(token) {
            Ok(())
        } else {
            Err(Status::unauthenticated("bearer token is not valid"))
        }
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth_header: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = auth_header {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("ascii"));
        }
        request
    }

    #[test]
    fn disabled_auth_lets_everything_through() {
        assert!(Auth::disabled().check(&request(None)).is_ok());
    }

    #[test]
    fn enabled_auth_checks_the_bearer_token() {
        let auth = Auth::new(Tokens::from_list("alpha, beta"));
        assert!(auth.check(&request(Some("Bearer alpha"))).is_ok());
        assert!(auth.check(&request(Some("Bearer beta"))).is_ok());
        for bad in [
            None,
            Some("Bearer gamma"),
            Some("alpha"),
            Some("Basic YWxwaGE="),
            Some("Bearer alph"),
            Some("Bearer alphaa"),
        ] {
            let status = auth.check(&request(bad)).expect_err("must be refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn token_file_skips_comments_and_blanks() {
        let dir = std::env::temp_dir().join(format!("sinter-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tokens");
        std::fs::write(&path, "# operators\none\n\n  two  \n").expect("write");
        let tokens = Tokens::from_file(&path).expect("read");
        assert_eq!(tokens.len(), 2);
        assert!(tokens.accepts(b"two"));
        assert_eq!(format!("{tokens:?}"), "Tokens(2 configured)");
        std::fs::remove_dir_all(&dir).ok();
    }
}
