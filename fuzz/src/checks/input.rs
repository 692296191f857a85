//! How the `recovery` and `ops` targets' inputs are read and written.
//!
//! The inputs are structs that derive `arbitrary::Arbitrary`; a target decodes its bytes with
//! `T::arbitrary(&mut Unstructured::new(data))` (also under `cargo test`, so the same bytes
//! mean the same input in both builds: `arbitrary` is pinned to one version in both). Every
//! field is read from the front of the input, which is what makes [`Encoder`] possible: it
//! writes the bytes that decode to a given input, for the seed corpus and the regression
//! files. `tests/fuzz_regressions.rs` checks that every seed decodes back to what was
//! encoded, so a change in `arbitrary`'s format fails a test instead of silently changing
//! what the committed files mean.
//!
//! The format `arbitrary` 1.5 reads, and [`Encoder`] writes: integers little-endian (zeros
//! past the end of the input); `bool` the low bit of a byte; an enum's variant `i` of `n` as a
//! `u32` `x` with `x * n >> 32 == i`; an `Option` a `bool`, then the value; a `Vec` each
//! element after a `true` byte, ended by a `false` one (or the end of the input).

use arbitrary::{Arbitrary, Unstructured};

/// A run of bytes (a file's contents): a little-endian `u16` length, then that many bytes
/// (fewer at the end of the input). `arbitrary`'s own `Vec<u8>` would put a continuation byte
/// before every byte, and its `&[u8]` reads its length from the end of the input; neither
/// keeps a file's bytes contiguous in the input, where libFuzzer's mutations of real files
/// act on them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Blob(u.bytes(len)?.to_vec()))
    }
}

/// The `u32` that `arbitrary`'s derived enums decode as variant `index` of `count`.
pub fn variant(index: usize, count: usize) -> u32 {
    assert!(index < count, "variant {index} of {count}");
    let (index, count) = (index as u64, count as u64);
    // The smallest x with x * count >= index << 32; then x * count < (index + 1) << 32.
    u32::try_from((index << 32).div_ceil(count)).expect("index < count")
}

/// Writes inputs in the format `arbitrary` reads (module documentation).
#[derive(Debug, Default)]
pub struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Variant `index` of an enum with `count` variants.
    pub fn variant(&mut self, index: usize, count: usize) -> &mut Self {
        self.u32(variant(index, count))
    }

    /// A [`Blob`]: at most `u16::MAX` bytes (a longer `bytes` is cut).
    pub fn blob(&mut self, bytes: &[u8]) -> &mut Self {
        let len = bytes.len().min(usize::from(u16::MAX));
        self.bytes.extend_from_slice(&(len as u16).to_le_bytes());
        self.bytes.extend_from_slice(&bytes[..len]);
        self
    }

    /// A `Vec`: `element` writes each item after its continuation byte.
    pub fn list<T>(&mut self, items: &[T], mut element: impl FnMut(&mut Self, &T)) -> &mut Self {
        for item in items {
            self.bool(true);
            element(self, item);
        }
        self.bool(false)
    }
}

/// Decodes `data` as a `T` the way the targets do.
pub fn decode<'a, T: Arbitrary<'a> + Default>(data: &'a [u8]) -> T {
    // Decoding reads zeros past the end of the input and never fails on these types; a
    // failure would be a change in `arbitrary`, and the seed round-trip test reports that.
    T::arbitrary(&mut Unstructured::new(data)).unwrap_or_default()
}
