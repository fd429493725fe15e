//! Command-line settings for a gRPC server, shared by every service binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use tonic::transport::{Identity, ServerTlsConfig};

use crate::auth::{AuthError, Tokens};

/// gRPC server flags, flattened into each service binary's arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct GrpcArgs {
    /// Address the gRPC server listens on.
    #[arg(
        long = "grpc-addr",
        env = "SINTER_GRPC_ADDR",
        default_value = "127.0.0.1:50051"
    )]
    pub addr: SocketAddr,
    /// PEM certificate chain; with `--tls-key`, the server speaks TLS only.
    #[arg(long, env = "SINTER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "SINTER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File of accepted bearer tokens, one per line (`#` starts a comment).
    #[arg(long, env = "SINTER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Accepted bearer tokens, comma-separated. Prefer `--token-file`: the environment
    /// of a process is easier to leak than a file.
    #[arg(long = "tokens", env = "SINTER_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,
}

impl GrpcArgs {
    /// Defaults for tests and the embedded mode: loopback, any free port, no TLS, no tokens.
    pub fn loopback() -> Self {
        GrpcArgs {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_cert: None,
            tls_key: None,
            token_file: None,
            tokens: None,
        }
    }

    /// The accepted tokens from the file and the variable together.
    ///
    /// A token file or list that was given but holds no token is an error: an empty
    /// secret must not quietly turn authentication off.
    pub fn load_tokens(&self) -> Result<Tokens, AuthError> {
        let mut tokens = Tokens::default();
        if let Some(path) = &self.token_file {
            let from_file = Tokens::from_file(path)?;
            if from_file.is_empty() {
                return Err(AuthError::NoTokens {
                    what: format!("token file {}", path.display()),
                });
            }
            tokens.extend(from_file);
        }
        if let Some(list) = &self.tokens {
            let from_list = Tokens::from_list(list);
            if from_list.is_empty() {
                return Err(AuthError::NoTokens {
                    what: "--tokens (SINTER_TOKENS)".to_owned(),
                });
            }
            tokens.extend(from_list);
        }
        Ok(tokens)
    }

    /// The TLS configuration, when a certificate and key were given.
    pub fn load_tls(&self) -> Result<Option<ServerTlsConfig>, std::io::Error> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|err| {
                std::io::Error::new(err.kind(), format!("cannot read {}: {err}", path.display()))
            })
        };
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        Ok(Some(ServerTlsConfig::new().identity(identity)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_token_source_is_refused() {
        let mut args = GrpcArgs::loopback();
        args.tokens = Some(" , ".to_owned());
        let err = args.load_tokens().expect_err("empty list");
        assert!(err.to_string().contains("holds no token"), "{err}");

        let path = std::env::temp_dir().join(format!("sinter-empty-{}", std::process::id()));
        std::fs::write(&path, "# nothing yet\n\n").expect("write");
        let mut args = GrpcArgs::loopback();
        args.token_file = Some(path.clone());
        let err = args.load_tokens().expect_err("empty file");
        assert!(err.to_string().contains("token file"), "{err}");
        std::fs::remove_file(&path).ok();

        assert!(
            GrpcArgs::loopback()
                .load_tokens()
                .expect("none given")
                .is_empty()
        );
    }
}
