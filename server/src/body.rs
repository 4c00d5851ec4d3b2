//! Request bodies, read with a hard limit on what they decode to.
//!
//! actix decodes a `Content-Encoding` body chunk by chunk, each chunk in
//! one go, and applies a body limit only to the output: a 65 KB zstd chunk
//! expands to gigabytes before any limit is checked. These extractors read
//! the raw body (itself limited), then decode it as a stream that stops as
//! soon as the output passes the limit, so a request holds at most about
//! the limit in memory whatever the body claims to expand to.
//!
//! [`Json`] and [`Form`] replace `web::Json` and `web::Form`; the limit is
//! a const parameter of the type, so each handler states its own.

use crate::error::{ApiError, blocking};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use sync_protocol::ErrorCode;
pub use sync_protocol::wire::MAX_BODY_BYTES;

/// The limit of every body that carries no records (logins, account and
/// team changes, pull requests, settings): 64 KiB, decoded.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// zstd frames may ask for a window of up to 2^24 bytes (16 MiB, the
/// largest body): a frame asking for more is refused before its window is
/// allocated (the decoder's own default allows 128 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// A JSON body of at most `LIMIT` bytes once decoded.
#[derive(Debug)]
pub struct Json<T, const LIMIT: usize = SMALL_BODY_BYTES>(pub T);

impl<T, const LIMIT: usize> Json<T, LIMIT> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, const LIMIT: usize> std::ops::Deref for Json<T, LIMIT> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A `application/x-www-form-urlencoded` body of at most `LIMIT` bytes once
/// decoded.
#[derive(Debug)]
pub struct Form<T, const LIMIT: usize = SMALL_BODY_BYTES>(pub T);

impl<T, const LIMIT: usize> Form<T, LIMIT> {
    /// The decoded value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, const LIMIT: usize> std::ops::Deref for Form<T, LIMIT> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for Json<T, LIMIT> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let kind = content_type_check(req, |m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .map_err(|()| ApiError::malformed("expected Content-Type: application/json"));
        let read = read(req, payload, LIMIT);
        Box::pin(async move {
            kind?;
            let bytes = read.await?;
            serde_json::from_slice(&bytes)
                .map(Json)
                .map_err(|e| ApiError::malformed(format!("invalid JSON body: {e}")))
        })
    }
}

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for Form<T, LIMIT> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let kind =
            content_type_check(req, |m| m == "application/x-www-form-urlencoded").map_err(|()| {
                ApiError::malformed("expected Content-Type: application/x-www-form-urlencoded")
            });
        let read = read(req, payload, LIMIT);
        Box::pin(async move {
            kind?;
            let bytes = read.await?;
            serde_urlencoded::from_bytes(&bytes)
                .map(Form)
                .map_err(|e| ApiError::malformed(format!("invalid form body: {e}")))
        })
    }
}

/// Whether the request's media type (lower-cased, parameters dropped)
/// passes `ok`.
fn content_type_check(req: &HttpRequest, ok: impl Fn(&str) -> bool) -> Result<(), ()> {
    let mime = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match mime {
        Some(m) if ok(&m) => Ok(()),
        _ => Err(()),
    }
}

/// The encodings a body may arrive in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Zstd,
}

fn encoding_of(req: &HttpRequest) -> Result<Encoding, ApiError> {
    let Some(v) = req.headers().get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let v = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        "zstd" => Ok(Encoding::Zstd),
        other => Err(ApiError::Client {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: ErrorCode::MalformedRequest,
            message: format!(
                "Content-Encoding {other:?} is not supported; send gzip, deflate, zstd or identity"
            ),
            field: None,
        }),
    }
}

/// `413 payload_too_large`.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is larger than {limit} bytes"),
    )
}

/// Read the body (at most `limit` bytes as sent) and decode it (at most
/// `limit` bytes as decoded).
fn read(
    req: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> impl Future<Output = Result<Bytes, ApiError>> + 'static {
    let encoding = encoding_of(req);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut payload = payload.take();
    async move {
        let encoding = encoding?;
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let mut raw = actix_web::web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::malformed(format!("cannot read the body: {e}")))?;
            if raw.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            raw.extend_from_slice(&chunk);
        }
        let raw = raw.freeze();
        if encoding == Encoding::Identity {
            return Ok(raw);
        }
        // Decoding a few megabytes takes milliseconds: off the I/O thread.
        blocking(move || decode(encoding, &raw, limit).map(Bytes::from)).await
    }
}

/// Decode `raw`, stopping as soon as the output passes `limit`.
fn decode(encoding: Encoding, raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => Box::new(raw),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(raw)),
        Encoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(raw).map_err(bad(encoding))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(bad(encoding))?;
            Box::new(d)
        }
    };
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            // zstd refuses a frame whose window passes the maximum: as
            // large as too much output, and answered the same.
            if encoding == Encoding::Zstd
                && e.to_string().contains("Frame requires too much memory")
            {
                too_large(limit)
            } else {
                bad(encoding)(e)
            }
        })?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn bad(encoding: Encoding) -> impl Fn(std::io::Error) -> ApiError {
    move |e| ApiError::malformed(format!("cannot decode the {encoding:?} body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn code_of(r: Result<Vec<u8>, ApiError>) -> ErrorCode {
        r.unwrap_err().code()
    }

    #[test]
    fn every_encoding_decodes_within_its_limit() {
        let data = br#"{"username":"ann"}"#.repeat(100);
        let deflate = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zstd = zstd::bulk::compress(&data, 3).unwrap();
        for (enc, raw) in [
            (Encoding::Identity, data.clone()),
            (Encoding::Gzip, gzip(&data)),
            (Encoding::Deflate, deflate),
            (Encoding::Zstd, zstd),
        ] {
            assert_eq!(decode(enc, &raw, data.len()).unwrap(), data, "{enc:?}");
            assert_eq!(
                code_of(decode(enc, &raw, data.len() - 1)),
                ErrorCode::PayloadTooLarge,
                "{enc:?}"
            );
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_crash() {
        for enc in [Encoding::Gzip, Encoding::Deflate, Encoding::Zstd] {
            assert_eq!(
                code_of(decode(enc, b"not compressed at all", 1024)),
                ErrorCode::MalformedRequest,
                "{enc:?}"
            );
        }
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused_as_too_large() {
        let mut c = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        c.long_distance_matching(true).unwrap();
        c.window_log(27).unwrap();
        // Unknown content size: the decoder must trust the declared window.
        c.include_contentsize(false).unwrap();
        c.write_all(&[0u8; 4096]).unwrap();
        let raw = c.finish().unwrap();
        assert_eq!(
            code_of(decode(Encoding::Zstd, &raw, MAX_BODY_BYTES)),
            ErrorCode::PayloadTooLarge
        );
    }
}
