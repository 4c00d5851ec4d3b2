//! Dashboard sessions: a signed, expiring token in an `HttpOnly;
//! SameSite=Strict` cookie. The HMAC-SHA256 key lives in the store's `meta`
//! table, so every server instance on the same database accepts the same
//! cookies and a restart does not sign anybody out. A cookie also names a
//! session the store must still hold (`dashboard_sessions`): signing out
//! ends it, and a password reset or a deactivation ends all of the user's.

use crate::store::{ReadTx, StoreError, WriteTx};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sync_protocol::UserId;

type HmacSha256 = hmac::Hmac<sha2_hmac::Sha256>;

/// The cookie's name.
pub const COOKIE: &str = "fieldsync_session";
/// The login form's anti-forgery cookie.
pub const LOGIN_CSRF_COOKIE: &str = "fieldsync_login_csrf";
/// How long a session lasts, seconds.
pub const TTL_SECS: i64 = 8 * 3600;
/// `meta` key of the signing key (base64url of 32 random bytes).
pub const SECRET_KEY: &str = "dashboard_session_secret";

/// What a session cookie says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The signed-in user.
    pub user: UserId,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Anti-forgery token every form of this session carries.
    pub csrf: String,
    /// The session's id: the cookie is good only while the store holds a
    /// live session under its hash ([`id_hash`]), so signing out, a
    /// password reset or a deactivation ends it on every instance.
    #[serde(default)]
    pub sid: String,
}

/// The stored form of a session id.
pub fn id_hash(sid: &str) -> Vec<u8> {
    crate::auth::token_hash(sid)
}

/// 32 random bytes as base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The signing key, created on first use.
pub fn secret(tx: &mut dyn WriteTx) -> Result<Vec<u8>, StoreError> {
    if let Some(k) = tx.meta(SECRET_KEY)? {
        return decode_secret(&k);
    }
    let k = random_token();
    tx.set_meta(SECRET_KEY, &k)?;
    decode_secret(&k)
}

/// The signing key if one exists (reading never creates it).
pub fn existing_secret(tx: &mut dyn ReadTx) -> Result<Option<Vec<u8>>, StoreError> {
    tx.meta(SECRET_KEY)?.map(|k| decode_secret(&k)).transpose()
}

fn decode_secret(k: &str) -> Result<Vec<u8>, StoreError> {
    URL_SAFE_NO_PAD
        .decode(k)
        .map_err(|e| StoreError::Corrupt(format!("dashboard session key: {e}")))
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// Sign a session into a cookie value: `payload.tag`, both base64url.
pub fn sign(key: &[u8], s: &Session) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default());
    let mut m = mac(key);
    m.update(payload.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// Check a cookie value's signature and expiry.
pub fn verify(key: &[u8], value: &str, now_secs: i64) -> Option<Session> {
    let (payload, tag) = value.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut m = mac(key);
    m.update(payload.as_bytes());
    m.verify_slice(&tag).ok()?;
    let s: Session = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (s.exp > now_secs).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_or_expired_cookie_is_refused() {
        let key = b"0123456789abcdef0123456789abcdef";
        let s = Session {
            user: UserId(uuid::Uuid::from_u128(7)),
            exp: 1_000,
            csrf: "c".into(),
            sid: "s".into(),
        };
        let v = sign(key, &s);
        assert_eq!(verify(key, &v, 999), Some(s.clone()));
        assert_eq!(verify(key, &v, 1_000), None, "expired");
        assert_eq!(verify(b"another key", &v, 0), None, "wrong key");
        let forged = Session {
            user: UserId(uuid::Uuid::from_u128(8)),
            ..s
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tag = v.split_once('.').unwrap().1;
        assert_eq!(verify(key, &format!("{forged_payload}.{tag}"), 0), None);
    }
}
