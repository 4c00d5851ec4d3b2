//! Passwords (argon2id), device tokens (32 random bytes, stored as SHA-256)
//! and the [`Actor`] extractor that authenticates every device request.

use crate::config::HashCost;
use crate::error::{ApiError, blocking};
use crate::state::AppState;
use crate::store::{DeviceRow, StoreError, UserRow};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use sync_protocol::ErrorCode;

/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// At most this many password hashes run at once: one per core, and no
/// more than [`MAX_HASH_SLOTS`]. Argon2id is memory-hard (19 MiB each with
/// the default parameters); beyond one per core it gains no throughput.
fn hash_gate() -> &'static Gate<Vec<Block>> {
    static GATE: OnceLock<Gate<Vec<Block>>> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Gate::new(
            (0..cores.clamp(1, MAX_HASH_SLOTS))
                .map(|_| Vec::new())
                .collect(),
        )
    })
}

/// Most password hashes at once, whatever the core count: each slot keeps
/// its argon2 memory (19 MiB) for the life of the process.
pub const MAX_HASH_SLOTS: usize = 4;

/// Password hashes computed by this process (`fieldsync_password_hashes_total`).
static HASHES: AtomicU64 = AtomicU64::new(0);

/// Password hashes computed by this process so far.
pub fn hashes_done() -> u64 {
    HASHES.load(Ordering::Relaxed)
}

/// How long a login or password change waits for a hashing slot. A hash
/// takes tens of milliseconds; a queue this long is a flood.
const HASH_WAIT: Duration = Duration::from_secs(30);

/// A pool of reusable resources for blocking code (the hashes run on
/// blocking threads): at most as many users at once as it holds.
struct Gate<T> {
    free: Mutex<Vec<T>>,
    freed: Condvar,
}

impl<T> Gate<T> {
    fn new(slots: Vec<T>) -> Self {
        assert!(!slots.is_empty(), "a gate needs a slot");
        Gate {
            free: Mutex::new(slots),
            freed: Condvar::new(),
        }
    }

    /// Run `f` with a slot once one is free, or give up after `wait` (a
    /// 503: the work queued ahead takes too long) without running it.
    fn run<R>(&self, wait: Duration, f: impl FnOnce(&mut T) -> R) -> Result<R, ApiError> {
        let slot = {
            let free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            let (mut free, _) = self
                .freed
                .wait_timeout_while(free, wait, |free| free.is_empty())
                .unwrap_or_else(PoisonError::into_inner);
            free.pop()
                .ok_or(ApiError::Unavailable(StoreError::TimedOut {
                    what: "a password-hashing slot",
                    after: Some(wait),
                }))?
        };
        // Give the slot back even if `f` panics.
        let mut held = Held {
            gate: self,
            slot: Some(slot),
        };
        let slot = held.slot.as_mut().unwrap_or_else(|| unreachable!());
        Ok(f(slot))
    }
}

/// A slot taken from a gate, returned when dropped.
struct Held<'a, T> {
    gate: &'a Gate<T>,
    slot: Option<T>,
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.gate
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(slot);
            self.gate.freed.notify_one();
        }
    }
}

fn params(cost: HashCost) -> Params {
    match cost {
        HashCost::Standard => Params::default(),
        // The smallest parameters argon2 allows: tests only.
        HashCost::TestOnlyFast => Params::new(8, 1, 1, None).unwrap_or_default(),
    }
}

/// The argon2 output of `password` with `salt` (raw bytes), into `out`,
/// computed in a hashing slot's kept memory (grown once to the largest
/// parameters seen) rather than a fresh allocation per hash: a fresh
/// 19 MiB per hash, freed on whichever blocking thread ran it, left
/// the allocator holding hundreds of megabytes after a login storm.
fn hash_in_slot(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<Result<(), argon2::Error>, ApiError> {
    hash_gate().run(HASH_WAIT, |blocks| {
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), Block::default());
        }
        HASHES.fetch_add(1, Ordering::Relaxed);
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..])
    })
}

/// Hash a password (PHC string).
pub fn hash_password(password: &str, cost: HashCost) -> Result<String, ApiError> {
    let fail =
        |e: &dyn std::fmt::Display| ApiError::internal(anyhow::anyhow!("hashing failed: {e}"));
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| fail(&e))?;
    let params = params(cost);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    hash_in_slot(&argon, &params, password.as_bytes(), salt_bytes, &mut out)?
        .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the stored PHC string (parameters come from
/// the string); an error when no hashing slot came free in time, which is
/// no verdict on the password.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, ApiError> {
    let Ok(h) = PasswordHash::new(phc) else {
        return Ok(false);
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(h.algorithm),
        Params::try_from(&h),
        h.salt,
        h.hash,
    ) else {
        return Ok(false);
    };
    let version = match h.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return Ok(false),
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buf) else {
        return Ok(false);
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    if hash_in_slot(&argon, &params, password.as_bytes(), salt_bytes, &mut out)?.is_err() {
        return Ok(false);
    }
    // `Output`'s comparison takes the same time wherever the bytes differ.
    Ok(Output::new(&out).is_ok_and(|o| o == expected))
}

/// Check a new password's length.
pub fn check_password_rules(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::field(
            ErrorCode::OutOfRange,
            "password",
            format!("a password needs at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A new device token and its hash.
pub fn new_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A random password for the first admin account.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// The authenticated device and its user.
#[derive(Clone, Debug)]
pub struct Actor {
    /// The user.
    pub user: UserRow,
    /// The device the token belongs to.
    pub device: DeviceRow,
}

/// The SHA-256 of the request's bearer token, for handlers that
/// authenticate inside their own transaction ([`authenticate`]) instead of
/// a separate one ([`Actor`]).
#[derive(Clone, Debug)]
pub struct BearerHash(pub Vec<u8>);

impl FromRequest for BearerHash {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        std::future::ready(match token {
            Some(t) => Ok(Self(token_hash(t))),
            None => Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "this request needs `Authorization: Bearer <device token>`; log in first",
            )),
        })
    }
}

/// The device whose token hashes to `hash`, and its user, if both may act.
pub fn authenticate(tx: &mut dyn crate::store::ReadTx, hash: &[u8]) -> Result<Actor, ApiError> {
    admit(tx.device_with_user(hash)?, Deactivated::Refused)
}

/// Whether a deactivated user's device is let in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deactivated {
    Refused,
    /// Only to hand over what it wrote before the deactivation.
    HandsOver,
}

/// The actor of a device and its user as found, if both may act.
fn admit(
    found: Option<(DeviceRow, Option<UserRow>)>,
    deactivated: Deactivated,
) -> Result<Actor, ApiError> {
    let Some((device, user)) = found else {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "unknown device token; log in again",
        ));
    };
    if device.revoked_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::DeviceRevoked,
            "this device was revoked by an administrator",
        ));
    }
    if device.logged_out_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::DeviceRevoked,
            "this token was revoked by a logout; log in again",
        ));
    }
    let user = user.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "the device's user no longer exists",
        )
    })?;
    if !user.active && deactivated == Deactivated::Refused {
        return Err(ApiError::new(
            ErrorCode::UserDeactivated,
            format!("user {} is deactivated", user.username),
        ));
    }
    Ok(Actor { user, device })
}

impl FromRequest for Actor {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        actor_of(req, payload, Deactivated::Refused)
    }
}

/// The device of a push: an [`Actor`], except that the device of a
/// deactivated user is let in too, to hand over the ops it wrote before
/// the deactivation (the push rejects every op stamped after it; every
/// other request of such a device is refused `user_deactivated`).
#[derive(Clone, Debug)]
pub struct Pusher(pub Actor);

impl FromRequest for Pusher {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let actor = actor_of(req, payload, Deactivated::HandsOver);
        Box::pin(async move { actor.await.map(Pusher) })
    }
}

/// The actor of the request's bearer token, read on a blocking thread.
fn actor_of(
    req: &HttpRequest,
    payload: &mut Payload,
    deactivated: Deactivated,
) -> Pin<Box<dyn Future<Output = Result<Actor, ApiError>>>> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let hash = BearerHash::from_request(req, payload).into_inner();
    Box::pin(async move {
        let state = state
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
        let BearerHash(hash) = hash?;
        blocking(move || admit(state.store.device_with_user(&hash)?, deactivated)).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_tokens_are_hashed() {
        let h = hash_password("correct horse", HashCost::TestOnlyFast).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h).unwrap());
        assert!(!verify_password("wrong horse", &h).unwrap());
        let (t, hash) = new_token();
        assert_eq!(t.len(), 43);
        assert_eq!(hash, token_hash(&t));
        assert_eq!(hash.len(), 32);
    }

    #[test]
    fn hashes_in_kept_memory_match_the_argon2_crates_own() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        for cost in [HashCost::TestOnlyFast, HashCost::Standard] {
            // Ours verify with the crate's verifier ...
            let ours = hash_password("correct horse", cost).unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"correct horse", &parsed)
                    .is_ok()
            );
            // ... and hashes stored by the crate's hasher verify with ours.
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params(cost))
                .hash_password(b"battery staple", &salt)
                .unwrap()
                .to_string();
            assert!(verify_password("battery staple", &theirs).unwrap());
            assert!(!verify_password("battery stapler", &theirs).unwrap());
        }
        assert!(!verify_password("x", "$argon2id$v=19$m=8,t=1,p=1$bad").unwrap());
        assert!(!verify_password("x", "not a hash").unwrap());
    }

    #[test]
    fn the_hash_gate_never_runs_more_than_its_slots() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Arc::new(Gate::new(vec![(), ()]));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                std::thread::spawn(move || {
                    gate.run(Duration::from_mins(1), |()| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(
            gate.free.lock().unwrap().len(),
            2,
            "every slot was given back"
        );
    }

    #[test]
    fn a_hash_waiting_for_a_full_gate_gives_up_at_its_deadline_without_running() {
        let gate = Gate::new(vec![()]);
        let (entered, inside) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let gate = &gate;
            s.spawn(move || {
                gate.run(Duration::from_mins(1), |()| {
                    entered.send(()).unwrap();
                    released.recv_timeout(Duration::from_mins(1)).unwrap();
                })
                .unwrap();
            });
            inside.recv_timeout(Duration::from_mins(1)).unwrap();
            let start = std::time::Instant::now();
            let ran = std::cell::Cell::new(false);
            let res = gate.run(Duration::from_millis(100), |()| ran.set(true));
            let waited = start.elapsed();
            assert!(
                matches!(
                    &res,
                    Err(ApiError::Unavailable(StoreError::TimedOut { .. }))
                ),
                "{res:?}"
            );
            assert!(!ran.get(), "gave up without hashing");
            assert!(waited >= Duration::from_millis(100), "waited {waited:?}");
            assert!(waited < Duration::from_secs(10), "waited {waited:?}");
            release.send(()).unwrap();
        });
        // The slot came back; the next hash runs.
        assert_eq!(gate.run(Duration::from_mins(1), |()| 7).unwrap(), 7);
    }
}
