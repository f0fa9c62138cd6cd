//! Bearer tokens: who is calling and what they may do.
//!
//! The user of a spin is the token's `sub`, never anything in the body. The
//! algorithm is pinned by configuration: a token signed with any other one
//! (including `alg: none`, which the JWT library does not even parse) is refused.
//! `exp` is required; `nbf`, `iss` and `aud` are checked when configured. A
//! token may live at most `auth.max_token_lifetime_secs`, and one that names
//! critical header extensions (`crit`, none of which prizewheel understands) is
//! refused.

use super::error::ApiError;
use crate::domain::UserId;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::future::{Ready, ready};
use std::num::NonZeroU64;
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
    /// Longest lifetime a token may have: one whose `exp` is further than this
    /// in the future (or, with `iat`, whose `exp - iat` is longer) is refused,
    /// so a token minted without a real expiry does not work forever.
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_secs: NonZeroU64,
}

fn default_leeway() -> u64 {
    30
}

/// One day: longer than any shopper session or sale day, short enough that a
/// leaked token stops working by the next one.
pub fn default_max_token_lifetime() -> NonZeroU64 {
    NonZeroU64::new(24 * 3600).unwrap_or(NonZeroU64::MIN)
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

/// Roles that open the admin, finance and grant endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Marketing,
    Finance,
    /// The order service: grants and revokes earned spins.
    Grants,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Marketing => "marketing",
            Role::Finance => "finance",
            Role::Grants => "grants",
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

/// The claims as verified: [`Claims`] and the optional `iat` (a NumericDate,
/// which may have a fraction).
#[derive(Deserialize)]
struct Verified {
    #[serde(flatten)]
    claims: Claims,
    #[serde(default)]
    iat: Option<f64>,
}

/// Checks tokens; built once at startup.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    max_lifetime_secs: u64,
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
        Ok(Verifier {
            key,
            validation,
            max_lifetime_secs: s.max_token_lifetime_secs.get(),
        })
    }

    /// The verified claims of a bearer token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::Unauthorized(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let data = jsonwebtoken::decode::<Verified>(token, &self.key, &self.validation)
            .map_err(|e| invalid(describe(&e)))?;
        // RFC 7515 §4.1.11: a recipient must refuse a token whose `crit` names
        // an extension it does not understand, and prizewheel understands none.
        if data.header.crit.is_some() {
            return Err(invalid(
                "it names critical header extensions (crit), which are not supported",
            ));
        }
        self.check_lifetime(&data.claims, jsonwebtoken::get_current_timestamp())?;
        Ok(data.claims.claims)
    }

    /// Refuses a token that lives longer than `auth.max_token_lifetime_secs`:
    /// an `exp` further ahead than that (plus the leeway, for a clock ahead of
    /// ours), or an `exp - iat` longer than that.
    fn check_lifetime(&self, v: &Verified, now: u64) -> Result<(), ApiError> {
        let max = self.max_lifetime_secs;
        let latest = now
            .saturating_add(max)
            .saturating_add(self.validation.leeway);
        if v.claims.exp > latest {
            return Err(invalid(&format!(
                "lifetime too long: it expires more than {max} s from now"
            )));
        }
        if let Some(iat) = v.iat
            && v.claims.exp as f64 - iat > max as f64
        {
            return Err(invalid(&format!(
                "lifetime too long: exp - iat is more than {max} s"
            )));
        }
        Ok(())
    }
}

/// 401 with a reason that names the failed check, never the token.
fn invalid(reason: &str) -> ApiError {
    ApiError::Unauthorized(format!("invalid bearer token: {reason}"))
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
    let mut headers = req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION);
    let header = headers.next().ok_or_else(|| {
        ApiError::Unauthorized("an Authorization: Bearer token is required".into())
    })?;
    // Which of two would be meant is anyone's guess (a proxy may have added
    // one): refuse rather than pick (RFC 6750 §3.1, `invalid_request`).
    if headers.next().is_some() {
        return Err(ApiError::InvalidAuthorization(
            "the request has more than one Authorization header; send exactly one".into(),
        ));
    }
    let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
    })?;
    let claims = verifier.verify(token)?;
    let user = UserId::parse(&claims.sub).map_err(ApiError::Unauthorized)?;
    Ok(Caller {
        user,
        roles: claims.roles,
    })
}

/// The token of an `Authorization` value `Bearer <token>`. The scheme is
/// case-insensitive (RFC 9110 §11.1); the credentials are `auth-scheme 1*SP
/// token68` (§11.4, §11.2): one or more spaces, then one token68 with no
/// whitespace in or after it. Only the optional whitespace around a field
/// value (§5.5) is trimmed.
fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_at_checked("Bearer".len())?;
    if !scheme.eq_ignore_ascii_case("Bearer") || !rest.starts_with(' ') {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let body = token.trim_end_matches('=');
    (!body.is_empty() && body.bytes().all(token68)).then_some(token)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_spaces_only() {
        for ok in [
            "Bearer abc.def-_~+/==",
            "bearer abc",
            "BEARER abc",
            "bEaReR abc",
            "Bearer    abc",
            " Bearer abc\t",
        ] {
            assert!(bearer_token(ok).is_some(), "{ok:?}");
        }
        assert_eq!(bearer_token("BEARER  a.b.c"), Some("a.b.c"));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "Bearer\tabc",
            "Bearer abc def",
            "Bearer abc\tdef",
            "Bearer =abc",
            "Bearer ab=c",
            "Bearer, abc",
            "Basic abc",
            "Bearär abc",
        ] {
            assert!(bearer_token(bad).is_none(), "{bad:?}");
        }
    }

    fn verifier(max: u64) -> Verifier {
        Verifier::new(&AuthSettings {
            algorithm: JwtAlgorithm::HS256,
            secret: Some("0123456789abcdef0123456789abcdef".to_owned().into()),
            public_key_file: None,
            issuer: None,
            audience: None,
            leeway_seconds: 30,
            max_token_lifetime_secs: NonZeroU64::new(max).unwrap(),
        })
        .unwrap()
    }

    fn verified(exp: u64, iat: Option<f64>) -> Verified {
        Verified {
            claims: Claims {
                sub: "u".into(),
                exp,
                roles: vec![],
                iss: None,
                aud: None,
            },
            iat,
        }
    }

    #[test]
    fn a_token_may_live_at_most_the_maximum_lifetime() {
        let v = verifier(3600);
        let now = 1_700_000_000;
        assert!(v.check_lifetime(&verified(now + 3600, None), now).is_ok());
        // The leeway absorbs an issuer whose clock is ahead of ours.
        assert!(v.check_lifetime(&verified(now + 3630, None), now).is_ok());
        assert!(v.check_lifetime(&verified(now + 3631, None), now).is_err());
        assert!(v.check_lifetime(&verified(u64::MAX, None), now).is_err());
        let issued = Some((now - 100) as f64);
        assert!(v.check_lifetime(&verified(now + 3500, issued), now).is_ok());
        assert!(
            v.check_lifetime(&verified(now + 3501, issued), now)
                .is_err()
        );
        // A fractional iat is a valid NumericDate.
        assert!(
            v.check_lifetime(&verified(now + 60, Some(now as f64 + 0.5)), now)
                .is_ok()
        );
    }
}
