//! Accounts: argon2 password hashes and JWTs.
//!
//! Access tokens (15 min) authenticate requests and WebSockets. Refresh tokens (30 days) carry a
//! `jti` and a family id; each is exchanged once for a new pair in the same family. Presenting
//! a token that was already exchanged means it leaked: the whole family is revoked.

use std::path::Path;
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use voiceflow_schema::{RefreshTokenRecord, Store};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;

use crate::config::Config;
use crate::error::ApiError;

/// The user a valid access token speaks for.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: Snowflake,
    /// Username when the token was issued.
    pub username: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    iat: u64,
    exp: u64,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fam: Option<String>,
}

/// A fresh access + refresh pair.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// Access token.
    pub token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
}

/// Issues and checks tokens, hashes and verifies passwords.
#[derive(Clone)]
pub struct Auth {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    issuer: String,
    access_ttl: u64,
    refresh_ttl: u64,
    argon: Argon2<'static>,
    /// A hash of a random password, verified against when an email is unknown so that the
    /// answer takes as long as for a wrong password.
    dummy_hash: Arc<String>,
    /// Bounds concurrent hashes to the core count: each costs `password_hash_memory_kib` of
    /// memory and a core for tens of milliseconds, so a burst of logins queues instead of
    /// exhausting memory and starving the chat traffic.
    hashing: Arc<tokio::sync::Semaphore>,
}

fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The configured secret, or one generated once and kept in `data_dir/jwt-secret`.
pub fn load_or_create_secret(config: &Config) -> std::io::Result<String> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let secret = random_token(32);
    write_private(&path, &secret)?;
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

impl Auth {
    /// Builds the service from config and the signing secret.
    pub fn new(config: &Config, secret: &str) -> Result<Auth, ApiError> {
        let params = Params::new(
            config.password_hash_memory_kib,
            config.password_hash_iterations,
            1,
            None,
        )
        .map_err(ApiError::internal)?;
        let argon = Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon
            .hash_password(random_token(16).as_bytes(), &salt)
            .map_err(ApiError::internal)?
            .to_string();
        Ok(Auth {
            encoding: Arc::new(EncodingKey::from_secret(secret.as_bytes())),
            decoding: Arc::new(DecodingKey::from_secret(secret.as_bytes())),
            issuer: config.jwt_issuer.clone(),
            access_ttl: config.access_token_ttl_secs,
            refresh_ttl: config.refresh_token_ttl_secs,
            argon,
            dummy_hash: Arc::new(dummy),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        })
    }

    /// Hashes a password off the async threads (argon2 is deliberately slow).
    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(ApiError::internal)?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }

    /// Checks a password against a stored hash (or the dummy one when `hash` is `None`).
    pub async fn verify_password(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let argon = self.argon.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        known && verified
    }

    fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    fn decode(&self, token: &str, typ: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| ApiError::unauthorized("invalid or expired token"))?;
        if data.claims.typ != typ {
            return Err(ApiError::unauthorized("wrong kind of token"));
        }
        Ok(data.claims)
    }

    /// Checks an access token.
    pub fn verify_access(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = self.decode(token, "access")?;
        let id = Snowflake::parse(&claims.sub)
            .ok_or_else(|| ApiError::unauthorized("invalid token subject"))?;
        Ok(AuthUser {
            id,
            username: claims.name.unwrap_or_default(),
        })
    }

    /// Issues a pair, starting a new refresh family when `family` is `None` (a login).
    pub async fn issue(
        &self,
        store: &dyn Store,
        user: &AuthUser,
        family: Option<String>,
    ) -> Result<TokenPair, ApiError> {
        let now = now_ms() / 1000;
        let access = Claims {
            sub: user.id.to_string(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.access_ttl,
            typ: "access".into(),
            name: Some(user.username.clone()),
            jti: None,
            fam: None,
        };
        let jti = random_token(16);
        let family = family.unwrap_or_else(|| random_token(16));
        let refresh = Claims {
            sub: user.id.to_string(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.refresh_ttl,
            typ: "refresh".into(),
            name: None,
            jti: Some(jti.clone()),
            fam: Some(family.clone()),
        };
        let record = RefreshTokenRecord {
            id: jti,
            user_id: user.id,
            family_id: family,
            expires_at: (now + self.refresh_ttl) * 1000,
            used: false,
            revoked: false,
        };
        store.put_refresh_token(&record).await?;
        Ok(TokenPair {
            token: self.sign(&access)?,
            refresh_token: self.sign(&refresh)?,
            expires_in: self.access_ttl,
        })
    }

    /// Exchanges a refresh token for a new pair. A used or revoked token revokes its family.
    pub async fn refresh(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> Result<(Snowflake, TokenPair), ApiError> {
        let claims = self.decode(token, "refresh")?;
        let (Some(jti), Some(family)) = (claims.jti, claims.fam) else {
            return Err(ApiError::unauthorized("malformed refresh token"));
        };
        let record = store
            .refresh_token(&jti)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown refresh token"))?;
        if record.revoked || record.used || !store.use_refresh_token(&jti).await? {
            store.revoke_refresh_family(&record.family_id).await?;
            tracing::warn!(user = %record.user_id, "refresh token reuse detected; family revoked");
            return Err(ApiError::unauthorized(
                "refresh token already used; sign in again",
            ));
        }
        let user = store
            .user_by_id(record.user_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("account is gone"))?;
        let auth_user = AuthUser {
            id: user.id,
            username: user.username,
        };
        let pair = self.issue(store, &auth_user, Some(family)).await?;
        Ok((user.id, pair))
    }

    /// Revokes the family of a refresh token owned by `user`.
    pub async fn logout(
        &self,
        store: &dyn Store,
        user: Snowflake,
        token: &str,
    ) -> Result<(), ApiError> {
        let claims = self.decode(token, "refresh")?;
        let jti = claims
            .jti
            .ok_or_else(|| ApiError::unauthorized("malformed refresh token"))?;
        if let Some(record) = store.refresh_token(&jti).await? {
            if record.user_id != user {
                return Err(ApiError::forbidden(
                    "that refresh token belongs to someone else",
                ));
            }
            store.revoke_refresh_family(&record.family_id).await?;
        }
        Ok(())
    }
}
