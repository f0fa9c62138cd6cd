//! Bearer tokens: who is calling and what they may do.
//!
//! The user of a spin is the token's `sub`, never anything in the body. The
//! algorithm is pinned by configuration: a token signed with any other one
//! (including `alg: none`, which the JWT library does not even parse) is refused.
//! `exp` is required; `nbf`, `iss` and `aud` are checked when configured.

use super::error::ApiError;
use crate::domain::UserId;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::future::{Ready, ready};
use std::path::PathBuf;

/// Longest token accepted; anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 8192;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The only algorithm accepted: `HS256`, `RS256` or `ES256`.
    pub algorithm: JwtAlgorithm,
    /// The HS256 shared secret; from `PRIZEWHEEL_JWT_SECRET`, at least 32 bytes.
    pub secret: Option<SecretString>,
    /// PEM public key for RS256/ES256.
    pub public_key_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

impl From<JwtAlgorithm> for Algorithm {
    fn from(a: JwtAlgorithm) -> Self {
        match a {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        }
    }
}

/// Roles that open the admin and finance endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Marketing,
    Finance,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Marketing => "marketing",
            Role::Finance => "finance",
        }
    }
}

/// The claims prizewheel reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Checks tokens; built once at startup.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(s: &AuthSettings) -> anyhow::Result<Self> {
        let key = match s.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = s.secret.as_ref().context(
                    "auth.algorithm is HS256 but no secret is set: export PRIZEWHEEL_JWT_SECRET",
                )?;
                if secret.expose_secret().len() < 32 {
                    anyhow::bail!("PRIZEWHEEL_JWT_SECRET must be at least 32 bytes");
                }
                DecodingKey::from_secret(secret.expose_secret().as_bytes())
            }
            alg => {
                let path = s.public_key_file.as_ref().with_context(|| {
                    format!("auth.algorithm is {alg:?} but auth.public_key_file is not set")
                })?;
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read public key {}", path.display()))?;
                if alg == JwtAlgorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                }
                .with_context(|| {
                    format!("{} is not a PEM public key for {alg:?}", path.display())
                })?
            }
        };
        let mut validation = Validation::new(s.algorithm.into());
        validation.leeway = s.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &s.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &s.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Verifier { key, validation })
    }

    /// The verified claims of a bearer token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::Unauthorized(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| ApiError::Unauthorized(format!("invalid bearer token: {}", describe(&e))))
    }
}

/// A short, safe reason: which check failed, never the token or the key.
fn describe(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not valid yet (nbf)",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::InvalidAlgorithmName => "algorithm not accepted",
        K::InvalidAudience => "wrong audience",
        K::InvalidIssuer => "wrong issuer",
        K::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed",
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    pub roles: Vec<String>,
}

impl Caller {
    /// 403 unless the caller has `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.roles.iter().any(|r| r == role.as_str()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(role.as_str()))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req))
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no token verifier configured")))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("an Authorization: Bearer token is required".into())
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?;
    let claims = verifier.verify(token)?;
    let user = UserId::parse(&claims.sub).map_err(ApiError::Unauthorized)?;
    Ok(Caller {
        user,
        roles: claims.roles,
    })
}

/// Signs an HS256 token (development and tests: `prizewheel token`).
pub fn sign_hs256(secret: &str, claims: &Claims) -> anyhow::Result<String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing the token")
}
