//! Login throttling: one rule for the API and the dashboard, its state in
//! the store (so every instance on one database shares it).
//!
//! An attempt is *reserved* in a write transaction before its password is
//! hashed: the reservation is a failure row, forgotten again when the
//! password was right. Concurrent guesses beyond the rule therefore see
//! the earlier ones and are refused without hashing.
//!
//! The rule, over the last [`WINDOW_MS`]:
//! * per (username, key): [`FREE_FAILURES`] failures cost nothing; after
//!   that each attempt waits [`FIRST_DELAY_MS`] after the previous
//!   failure, doubling with every further failure up to the window;
//! * per username: at most [`USER_CEILING`] failures from addresses
//!   (someone else's failures, from anywhere);
//! * per key: at most [`KEY_CEILING`] failures for any usernames (one
//!   address spraying many accounts).
//!
//! The key is the client's address, or, when the login names a device
//! already registered to that user, that device: the user's own laptop is
//! not locked out by failures elsewhere (only by its own).

use ipnet::IpNet;
use std::net::IpAddr;
use sync_protocol::DeviceId;

/// How far back failures count: 15 minutes.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failures per (username, key) before attempts are spaced out.
pub const FREE_FAILURES: usize = 3;
/// The first pause, after [`FREE_FAILURES`] failures: 15 s.
pub const FIRST_DELAY_MS: i64 = 15_000;
/// Failures per username, from every address, within the window.
pub const USER_CEILING: usize = 20;
/// Failures per key, for every username, within the window.
pub const KEY_CEILING: u64 = 100;

/// Who is trying to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A client address (the socket's, or forwarded by a trusted proxy).
    Address(IpAddr),
    /// A device registered to the user named in the login.
    Device(DeviceId),
}

const DEVICE_PREFIX: &str = "device:";

impl Key {
    /// The form stored with each failure. An IPv6 client counts as its
    /// /64 (one subscriber's network: an attacker there can pick any of
    /// 2^64 addresses); an IPv4-mapped IPv6 address as its IPv4 address.
    pub fn stored(&self) -> String {
        match self {
            Key::Address(IpAddr::V4(a)) => a.to_string(),
            Key::Address(IpAddr::V6(a)) => {
                if let Some(v4) = a.to_ipv4_mapped() {
                    return v4.to_string();
                }
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Key::Device(d) => format!("{DEVICE_PREFIX}{d}"),
        }
    }
}

/// Whether an attempt under `key` may go ahead now; `Err(ms)`: not for
/// another `ms` milliseconds. `by_user` are the username's failures in the
/// window as `(stored key, at_ms)`; `by_key` counts the key's failures.
pub fn decide(now_ms: i64, key: Key, by_user: &[(String, i64)], by_key: u64) -> Result<(), i64> {
    let stored = key.stored();
    let mut pair: Vec<i64> = by_user
        .iter()
        .filter(|(k, _)| *k == stored)
        .map(|(_, at)| *at)
        .collect();
    pair.sort_unstable();
    if pair.len() >= FREE_FAILURES {
        let doublings = u32::try_from(pair.len() - FREE_FAILURES).unwrap_or(u32::MAX);
        let pause = FIRST_DELAY_MS
            .checked_mul(1_i64.checked_shl(doublings).unwrap_or(i64::MAX))
            .unwrap_or(WINDOW_MS)
            .min(WINDOW_MS);
        let last = pair.last().copied().unwrap_or(now_ms);
        if now_ms < last + pause {
            return Err(last + pause - now_ms);
        }
    }
    if let Key::Address(_) = key {
        let mut elsewhere: Vec<i64> = by_user
            .iter()
            .filter(|(k, _)| !k.starts_with(DEVICE_PREFIX))
            .map(|(_, at)| *at)
            .collect();
        if elsewhere.len() >= USER_CEILING {
            // Until enough of them leave the window.
            elsewhere.sort_unstable();
            let frees = elsewhere[elsewhere.len() - USER_CEILING];
            return Err((frees + WINDOW_MS - now_ms).max(1_000));
        }
    }
    if by_key >= KEY_CEILING {
        return Err(WINDOW_MS / 15);
    }
    Ok(())
}

/// The client's address: the socket's peer, unless that peer is a trusted
/// proxy, in which case the nearest address in `X-Forwarded-For` that is
/// not itself a trusted proxy.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: &[&str],
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Ok(a) = hop.parse::<IpAddr>() else {
            break;
        };
        client = a;
        if !is_trusted(&a) {
            break;
        }
    }
    Some(client)
}

/// The client address of a request, by [`client_address`] with the
/// application's trusted proxies.
pub fn request_address(req: &actix_web::HttpRequest) -> IpAddr {
    let trusted = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|s| s.trusted_proxies.clone())
        .unwrap_or_default();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_address(req.peer_addr().map(|a| a.ip()), &forwarded, &trusted)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Key = Key::Address(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));

    fn failures(key: Key, at: &[i64]) -> Vec<(String, i64)> {
        at.iter().map(|t| (key.stored(), *t)).collect()
    }

    #[test]
    fn pauses_start_after_the_free_failures_and_double() {
        let now = 1_000_000;
        assert_eq!(decide(now, ADDR, &failures(ADDR, &[now, now]), 2), Ok(()));
        let three = failures(ADDR, &[now - 3, now - 2, now - 1]);
        assert_eq!(decide(now, ADDR, &three, 3), Err(FIRST_DELAY_MS - 1));
        assert_eq!(decide(now - 1 + FIRST_DELAY_MS, ADDR, &three, 3), Ok(()));
        let four = failures(ADDR, &[1, 2, 3, now]);
        assert_eq!(decide(now, ADDR, &four, 4), Err(2 * FIRST_DELAY_MS));
        let many = failures(ADDR, &[now; 19]);
        assert_eq!(decide(now, ADDR, &many, 19), Err(WINDOW_MS), "capped");
    }

    #[test]
    fn a_registered_device_is_not_locked_out_by_failures_elsewhere() {
        let now = 1_000_000;
        let device = Key::Device(DeviceId(uuid::Uuid::from_u128(5)));
        let others: Vec<(String, i64)> = (0..40)
            .map(|i| (format!("10.1.0.{i}"), now - 1_000 + i))
            .collect();
        assert!(decide(now, ADDR, &others, 0).is_err(), "user ceiling");
        assert_eq!(decide(now, device, &others, 0), Ok(()));
        // ... but its own failures count for it.
        let mut own = others.clone();
        own.extend(failures(device, &[now - 3, now - 2, now - 1]));
        assert!(decide(now, device, &own, 3).is_err());
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        let key = |s: &str| Key::Address(s.parse().unwrap()).stored();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    }

    #[test]
    fn one_key_spraying_many_usernames_hits_its_ceiling() {
        assert!(decide(0, ADDR, &[], KEY_CEILING).is_err());
        assert_eq!(decide(0, ADDR, &[], KEY_CEILING - 1), Ok(()));
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let xff = ["203.0.113.9, 198.51.100.7", "10.0.0.2"];
        assert_eq!(
            client_address(ip("10.0.0.1"), &xff, &trusted),
            ip("198.51.100.7"),
            "the nearest untrusted hop"
        );
        assert_eq!(
            client_address(ip("192.0.2.1"), &xff, &trusted),
            ip("192.0.2.1"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &["garbage"], &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(client_address(ip("10.0.0.1"), &[], &[]), ip("10.0.0.1"));
    }
}
