//! The `X-Annex-Signature` header: `sha256=<hex HMAC-SHA256 of the raw body, keyed with the
//! subscription's secret>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-annex-signature";
/// The header carrying the event name.
pub const EVENT_HEADER: &str = "x-annex-event";
/// The header carrying the delivery id (the same on every attempt of one delivery).
pub const DELIVERY_HEADER: &str = "x-annex-delivery";

/// The value of `X-Annex-Signature` for `body` signed with `secret`.
///
/// ```
/// let sig = annex_ext_webhooks::signature(b"It's a Secret to Everybody", b"Hello, World!");
/// assert_eq!(sig, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
/// ```
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this never fails; keep the fallback total anyway.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";
