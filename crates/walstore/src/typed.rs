//! Typed values: the one encoding that Rust ([`crate::WriteTxn::put_as`]), the `walstore`
//! command and the Python package share (docs/VALUES.md).
//!
//! A typed value is one MessagePack value; structs are maps with field names
//! (`rmp_serde::to_vec_named`), so a Rust struct and a Python dict meet. Decoding is strict:
//! bytes after the value, a value of another type, or bytes that are not MessagePack are an
//! [`Error::TypeMismatch`], never a silent misread.
//!
//! Invariant: a typed value is never a single printable ASCII byte (`0x20..=0x7e`). Such a
//! byte is both a MessagePack integer (32..=126) and one character of text (`"5"` would read
//! as 53), so [`encode`] writes those integers in the two-byte `uint 8` form and [`decode`]
//! refuses the single byte. Every other value that is decimal text (`"200"`, `"-3"`) is
//! refused by the trailing-bytes check, so `incr` can tell a typed counter from a text one.

use crate::error::{Error, Result};
use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;
use std::io::Cursor;

/// MessagePack marker of `uint 8`: one byte of marker, one of value.
const MARKER_UINT8: u8 = 0xcc;

/// The single bytes that are also one character of printable ASCII text.
fn is_text_byte(byte: u8) -> bool {
    (0x20..=0x7e).contains(&byte)
}

/// Encodes `value` as a typed value: MessagePack, structs as maps with field names.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut bytes =
        rmp_serde::to_vec_named(value).map_err(|e| Error::Serialization(e.to_string()))?;
    if let [byte] = bytes[..] {
        if is_text_byte(byte) {
            bytes = vec![MARKER_UINT8, byte];
        }
    }
    debug_assert!(check_not_text(&bytes).is_ok());
    Ok(bytes)
}

/// Decodes a typed value into a `T`, strictly (see the module documentation).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    decode_seed(bytes, std::marker::PhantomData::<T>)
}

/// Decodes a typed value with a [`DeserializeSeed`] (for example one that builds objects of
/// another language), with the same strict checks as [`decode`].
pub fn decode_seed<'de, S: DeserializeSeed<'de>>(bytes: &[u8], seed: S) -> Result<S::Value> {
    check_not_text(bytes)?;
    let mut deserializer = rmp_serde::Deserializer::new(Cursor::new(bytes));
    let value = seed
        .deserialize(&mut deserializer)
        .map_err(|e| mismatch(bytes, e.to_string()))?;
    let used = deserializer.position();
    if used != bytes.len() as u64 {
        return Err(mismatch(
            bytes,
            format!(
                "{} bytes follow a MessagePack value of {used} bytes",
                bytes.len() as u64 - used
            ),
        ));
    }
    Ok(value)
}

/// Whether `bytes` hold exactly one typed value (of any type).
pub fn is_typed(bytes: &[u8]) -> bool {
    decode::<serde::de::IgnoredAny>(bytes).is_ok()
}

fn check_not_text(bytes: &[u8]) -> Result<()> {
    match bytes {
        [byte] if is_text_byte(*byte) => Err(mismatch(
            bytes,
            "a single printable ASCII byte is text, never a typed value".into(),
        )),
        _ => Ok(()),
    }
}

fn mismatch(bytes: &[u8], detail: String) -> Error {
    let shown = &bytes[..bytes.len().min(16)];
    let more = if bytes.len() > shown.len() { "..." } else { "" };
    Error::TypeMismatch {
        detail: format!(
            "{detail} (value of {} bytes: {}{more})",
            bytes.len(),
            shown.escape_ascii()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Server {
        url: String,
        port: u16,
    }

    #[test]
    fn structs_are_maps_with_field_names() {
        let bytes = encode(&Server {
            url: "u".into(),
            port: 1,
        })
        .expect("encode");
        // fixmap of 2, "url", "u", "port", 1
        assert_eq!(bytes, b"\x82\xa3url\xa1u\xa4port\x01");
        let back: Server = decode(&bytes).expect("decode");
        assert_eq!(back.port, 1);
    }

    #[test]
    fn decimal_text_is_never_read_as_an_integer() {
        assert!(decode::<u64>(b"200").is_err(), "trailing bytes");
        assert!(decode::<u64>(b"5").is_err(), "one text byte");
        assert!(decode::<u64>(b"-3").is_err());
        assert!(!is_typed(b"200") && !is_typed(b"x"));
    }

    #[test]
    fn integers_that_look_like_text_take_two_bytes_and_round_trip() {
        for n in [0u64, 31, 32, 53, 126, 127, 128, 200, u64::MAX] {
            let bytes = encode(&n).expect("encode");
            assert!(
                !(bytes.len() == 1 && is_text_byte(bytes[0])),
                "{n}: {bytes:?}"
            );
            assert_eq!(decode::<u64>(&bytes).expect("decode"), n);
            assert_eq!(decode::<i64>(&bytes).ok(), i64::try_from(n).ok());
        }
        assert_eq!(encode(&53u8).expect("encode"), [MARKER_UINT8, b'5']);
    }

    #[test]
    fn a_value_of_another_type_is_a_type_mismatch() {
        let text = encode("hello").expect("encode");
        let err = decode::<u64>(&text).expect_err("a string is not a number");
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<u64>(&[0xc1]).is_err(), "never-used marker");
        assert!(decode::<String>(&[0xa5, b'a']).is_err(), "truncated");
    }
}
