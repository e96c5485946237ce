//! Accounts: argon2 password hashes and JWTs.
//!
//! Access tokens (15 min) authenticate requests and WebSockets. Refresh tokens (30 days) carry a
//! `jti` and a family id; each is exchanged once for a new pair in the same family. Presenting
//! a token that was already exchanged means it leaked: the whole family is revoked, and the
//! WebSockets opened with that sign-in close (4003). A token presented again within
//! `[sessions] refresh_grace_ms` of its exchange (tabs refreshing at once) gets the same
//! successor instead. Access tokens name their family (`fam`), so logging out ends exactly the
//! connections of that sign-in.

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

use voiceflow_actors::NodeContext;

use crate::auth_grace::Turn;
use crate::config::Config;
use crate::error::ApiError;

/// The user a valid access token speaks for.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: Snowflake,
    /// Username when the token was issued (the account's current name may differ).
    pub username: String,
    /// The sign-in (refresh-token family) the token belongs to; `None` for tokens that do not
    /// name one.
    pub family: Option<String>,
    /// When the token expires (Unix seconds); 0 when not known.
    pub expires_at: u64,
}

impl AuthUser {
    /// A user about to be issued tokens.
    pub fn named(id: Snowflake, username: String) -> AuthUser {
        AuthUser {
            id,
            username,
            family: None,
            expires_at: 0,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
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
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    leeway: u64,
    /// Refresh tokens exchanged within the grace window, by `jti`, with their successor.
    rotations: Arc<crate::auth_grace::Rotations>,
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
            leeway: config.sessions.token_leeway_secs,
            rotations: Arc::new(crate::auth_grace::Rotations::new(
                config.sessions.refresh_grace(),
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
        // `nbf` is checked when present (tokens from before it was issued have none).
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
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
            family: claims.fam,
            expires_at: claims.exp,
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
        let family = family.unwrap_or_else(|| random_token(16));
        let access = Claims {
            sub: user.id.to_string(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.access_ttl,
            nbf: Some(now),
            typ: "access".into(),
            name: Some(user.username.clone()),
            jti: None,
            fam: Some(family.clone()),
        };
        let jti = random_token(16);
        let refresh = Claims {
            sub: user.id.to_string(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + self.refresh_ttl,
            nbf: Some(now),
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

    /// Exchanges a refresh token for a new pair. A used or revoked token revokes its family
    /// (and closes its connections), unless it was exchanged within the grace window: then
    /// the same successor is returned again.
    pub async fn refresh(
        &self,
        ctx: &NodeContext,
        token: &str,
    ) -> Result<(Snowflake, TokenPair), ApiError> {
        let store = ctx.store.as_ref();
        let claims = self.decode(token, "refresh")?;
        let (Some(jti), Some(_)) = (claims.jti, claims.fam) else {
            return Err(ApiError::unauthorized("malformed refresh token"));
        };
        let record = store
            .refresh_token(&jti)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown refresh token"))?;
        if record.revoked {
            return Err(reused());
        }
        let rotation = match self.rotations.begin(&jti) {
            Turn::Follow(successor) => return successor.await,
            Turn::Rotate(rotation) => rotation,
        };
        if record.used || !store.use_refresh_token(&jti).await? {
            rotation.abandon();
            store.revoke_refresh_family(&record.family_id).await?;
            tracing::warn!(user = %record.user_id, "refresh token reuse detected; family revoked");
            crate::account_sessions::sign_in_revoked(
                ctx,
                record.user_id,
                &record.family_id,
                "sign-in revoked: a refresh token was used twice",
            );
            return Err(reused());
        }
        let outcome = self.rotate(store, &record).await;
        rotation.finish(&outcome);
        outcome
    }

    async fn rotate(
        &self,
        store: &dyn Store,
        record: &RefreshTokenRecord,
    ) -> Result<(Snowflake, TokenPair), ApiError> {
        let user = store
            .user_by_id(record.user_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("account is gone"))?;
        let auth_user = AuthUser::named(user.id, user.username);
        let pair = self
            .issue(store, &auth_user, Some(record.family_id.clone()))
            .await?;
        Ok((user.id, pair))
    }

    /// Revokes the family of a refresh token owned by `user` (or, without one, the sign-in of
    /// the access token `user` came with) and closes the connections of that sign-in.
    pub async fn logout(
        &self,
        ctx: &NodeContext,
        user: &AuthUser,
        token: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut family = user.family.clone();
        if let Some(token) = token {
            let claims = self.decode(token, "refresh")?;
            let jti = claims
                .jti
                .ok_or_else(|| ApiError::unauthorized("malformed refresh token"))?;
            if let Some(record) = ctx.store.refresh_token(&jti).await? {
                if record.user_id != user.id {
                    return Err(ApiError::forbidden(
                        "that refresh token belongs to someone else",
                    ));
                }
                ctx.store.revoke_refresh_family(&record.family_id).await?;
                family = Some(record.family_id);
            }
        }
        if let Some(family) = family {
            if token.is_none() {
                ctx.store.revoke_refresh_family(&family).await?;
            }
            crate::account_sessions::sign_in_revoked(ctx, user.id, &family, "signed out");
        }
        Ok(())
    }
}

fn reused() -> ApiError {
    ApiError::unauthorized("refresh token already used; sign in again")
}
