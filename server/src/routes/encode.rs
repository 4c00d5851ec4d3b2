//! Sync answers compressed where they are built.
//!
//! The `Compress` middleware compresses an answer after the handler, on the
//! I/O thread or (above 1 KiB) after a hop to the blocking pool, and its
//! zstd stream prepares tables sized for an input of any length: for the
//! few kilobytes of an everyday push or pull answer that set-up costs more
//! than the compressing. The sync handlers already run on a blocking thread
//! with the whole body in hand, so they compress there, telling zstd the
//! size and reusing a few contexts. The middleware leaves an answer
//! that names its encoding alone, and still serves clients that do not
//! accept zstd.

use actix_web::HttpResponse;
use actix_web::http::header::{
    self, AcceptEncoding, ContentEncoding, ContentType, Encoding, HeaderValue,
};
use std::sync::{Mutex, MutexGuard, PoisonError};
use zstd::bulk::Compressor;

/// zstd's default level, as the middleware uses.
const LEVEL: i32 = 3;

/// Whether the client named zstd as acceptable (and preferred to anything
/// else we could send).
pub fn wants_zstd(accept: Option<&AcceptEncoding>) -> bool {
    accept.is_some_and(|a| {
        a.negotiate([Encoding::zstd(), Encoding::gzip(), Encoding::identity()].iter())
            == Some(Encoding::zstd())
    })
}

/// A JSON answer body, compressed with zstd when `zstd` holds and the
/// compressing succeeds.
#[derive(Debug)]
pub struct Body {
    bytes: Vec<u8>,
    zstd: bool,
}

impl Body {
    /// Encode `json` (run this on a blocking thread).
    pub fn new(json: Vec<u8>, zstd: bool) -> Self {
        if zstd && let Some(bytes) = compress(&json) {
            return Self { bytes, zstd: true };
        }
        Self {
            bytes: json,
            zstd: false,
        }
    }

    /// A `200 OK` JSON answer carrying this body, with `extra` headers.
    pub fn respond(self, extra: &[(&'static str, String)]) -> HttpResponse {
        let mut r = HttpResponse::Ok();
        r.content_type(ContentType::json());
        if self.zstd {
            r.insert_header(ContentEncoding::Zstd);
            r.insert_header((header::VARY, HeaderValue::from_static("accept-encoding")));
        }
        for (name, value) in extra {
            r.insert_header((*name, value.as_str()));
        }
        r.body(self.bytes)
    }
}

/// Idle zstd contexts kept for reuse: a few suffice, since only as many
/// answers are compressed at once as there are cores.
const IDLE_CONTEXTS: usize = 8;

/// Larger bodies get a context of their own: its set-up is small next to
/// compressing them, and a kept context would keep tables that size.
const REUSE_UP_TO: usize = 256 * 1024;

static IDLE: Mutex<Vec<Compressor<'static>>> = Mutex::new(Vec::new());

fn idle() -> MutexGuard<'static, Vec<Compressor<'static>>> {
    IDLE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn compress(json: &[u8]) -> Option<Vec<u8>> {
    if json.len() > REUSE_UP_TO {
        return zstd::bulk::compress(json, LEVEL).ok();
    }
    let kept = idle().pop();
    let mut context = match kept {
        Some(c) => c,
        None => Compressor::new(LEVEL).ok()?,
    };
    let out = context.compress(json).ok()?;
    let mut idle = idle();
    if idle.len() < IDLE_CONTEXTS {
        idle.push(context);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::http::header::Header;

    fn accept(s: &str) -> AcceptEncoding {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("accept-encoding", s))
            .to_http_request();
        AcceptEncoding::parse(&req).unwrap()
    }

    #[test]
    fn zstd_only_when_the_client_prefers_it() {
        assert!(wants_zstd(Some(&accept("gzip, zstd"))));
        assert!(wants_zstd(Some(&accept("zstd;q=0.9, gzip;q=0.5"))));
        assert!(!wants_zstd(Some(&accept("gzip"))));
        assert!(!wants_zstd(Some(&accept("zstd;q=0, gzip"))));
        assert!(!wants_zstd(Some(&accept("gzip;q=1.0, zstd;q=0.2"))));
        assert!(!wants_zstd(None));
    }

    #[test]
    fn a_compressed_answer_decodes_to_its_json_and_says_so() {
        let json = br#"{"outcomes":[],"acked_through":7}"#.repeat(40);
        let r = Body::new(json.clone(), true).respond(&[("fieldsync-more", "false".into())]);
        assert_eq!(r.headers().get("content-encoding").unwrap(), "zstd");
        assert_eq!(r.headers().get("vary").unwrap(), "accept-encoding");
        assert_eq!(r.headers().get("fieldsync-more").unwrap(), "false");
        let bytes = r.into_body().try_into_bytes().unwrap();
        assert!(bytes.len() < json.len());
        assert_eq!(zstd::decode_all(&bytes[..]).unwrap(), json);

        let plain = Body::new(json.clone(), false).respond(&[]);
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(plain.into_body().try_into_bytes().unwrap(), json);
    }

    #[test]
    fn large_bodies_and_many_threads_keep_few_contexts() {
        let big = br#"{"note":"visit"}"#.repeat(REUSE_UP_TO / 16 + 100);
        let packed = compress(&big).unwrap();
        assert_eq!(zstd::decode_all(&packed[..]).unwrap(), big);
        std::thread::scope(|s| {
            for t in 0..32u8 {
                s.spawn(move || {
                    for i in 0..10u8 {
                        let small = [t, i].repeat(500);
                        let packed = compress(&small).unwrap();
                        assert_eq!(zstd::decode_all(&packed[..]).unwrap(), small);
                    }
                });
            }
        });
        assert!(!idle().is_empty());
        assert!(idle().len() <= IDLE_CONTEXTS);
    }
}
