//! Byte-level effects of a crash on one file: kept, cut, torn, garbage and diverging writes,
//! dropped pages, and damage to synced bytes.

use super::{Builder, FaultClass, Keep};
use crate::simfs::state::{apply_write, to_usize, Inode, Pending};
use rand::rngs::StdRng;
use rand::Rng;

impl Builder<'_> {
    /// The bytes of one file: durable bytes plus the kept part of each pending change.
    pub(super) fn content(&mut self, inode: &Inode, plan: &[Keep]) -> Vec<u8> {
        let mut buf = inode.durable.to_vec();
        for (change, keep) in inode.pending.iter().zip(plan) {
            match (change, keep) {
                (_, Keep::Drop) => {}
                (Pending::SetLen { len, .. }, _) => buf.resize(to_usize(*len), 0),
                (Pending::Write { offset, data, .. }, keep) => {
                    let protect = if self.media.powersafe_overwrite {
                        inode.durable.len()
                    } else {
                        0
                    };
                    self.apply_kept(&mut buf, to_usize(*offset), data, keep, protect);
                }
            }
        }
        // Pages a failed sync dropped hold old, new or torn bytes (F11): most images keep the
        // old ones, some take the dropped write sector by sector.
        if !inode.lost.is_empty() && self.rng.gen_bool(0.25) {
            for (offset, data) in &inode.lost {
                let start = to_usize(*offset);
                if start + data.len() > buf.len() {
                    continue;
                }
                let sectors = (start + data.len()).div_ceil(self.sector) - start / self.sector;
                let mask: Vec<u8> = (0..sectors).map(|_| self.rng.gen_range(0..2u8)).collect();
                self.apply_torn(&mut buf, start, data, &mask, usize::MAX);
            }
            self.classes.push(FaultClass::F11);
        }
        buf
    }

    /// Applies the kept part of one write; bytes below `protect` outside the write are never
    /// garbled (powersafe overwrite).
    fn apply_kept(
        &mut self,
        buf: &mut Vec<u8>,
        offset: usize,
        data: &[u8],
        keep: &Keep,
        protect: usize,
    ) {
        let end = offset + data.len();
        match keep {
            Keep::Drop => {}
            Keep::Full => apply_write(buf, offset as u64, data),
            Keep::Prefix(n) => apply_write(buf, offset as u64, &data[..(*n).min(data.len())]),
            Keep::SizeOnly(garbage) => {
                if end > buf.len() {
                    let old = buf.len();
                    buf.resize(end, 0);
                    if *garbage {
                        self.rng.fill(&mut buf[old.max(offset)..end]);
                    }
                    self.classes.push(FaultClass::F6);
                } else {
                    apply_write(buf, offset as u64, data);
                }
            }
            Keep::DataOnly => {
                let keep = buf.len().saturating_sub(offset).min(data.len());
                if keep < data.len() {
                    self.classes.push(FaultClass::F6);
                }
                apply_write(buf, offset as u64, &data[..keep]);
            }
            Keep::Torn(mask) => self.apply_torn(buf, offset, data, mask, protect),
        }
    }

    fn apply_torn(
        &mut self,
        buf: &mut Vec<u8>,
        offset: usize,
        data: &[u8],
        mask: &[u8],
        protect: usize,
    ) {
        let end = offset + data.len();
        if buf.len() < end {
            buf.resize(end, 0);
        }
        let first = offset / self.sector;
        for (i, choice) in mask.iter().enumerate() {
            let s_start = (first + i) * self.sector;
            let s_end = s_start + self.sector;
            match choice {
                1 => {
                    let a = s_start.max(offset);
                    let b = s_end.min(end);
                    if a < b {
                        buf[a..b].copy_from_slice(&data[a - offset..b - offset]);
                    }
                }
                2 => {
                    let b = s_end.min(buf.len());
                    for (i, byte) in buf.iter_mut().enumerate().take(b).skip(s_start) {
                        let inside = offset <= i && i < end;
                        if inside || i >= protect {
                            *byte = self.rng.gen();
                        }
                    }
                    if s_start < b {
                        self.classes.push(FaultClass::F5);
                    }
                }
                _ => {}
            }
        }
        if mask.contains(&1) && mask.iter().any(|c| *c != 1) {
            self.classes.push(FaultClass::F4);
        }
    }
}

/// Damages the bytes at `offset`: a bit flip, the sector zeroed, or the sector filled with
/// garbage. Returns what was done; the byte at `offset` always changes.
pub(super) fn damage_bytes(
    bytes: &mut [u8],
    offset: usize,
    sector: usize,
    rng: &mut StdRng,
) -> String {
    let s_start = offset / sector * sector;
    let s_end = (s_start + sector).min(bytes.len());
    let before = bytes[offset];
    let how = match rng.gen_range(0..3u8) {
        0 => {
            bytes[s_start..s_end].fill(0);
            "zeroed sector"
        }
        1 => {
            rng.fill(&mut bytes[s_start..s_end]);
            "garbage sector"
        }
        _ => "bit flip",
    };
    if bytes[offset] == before {
        bytes[offset] ^= 1 << rng.gen_range(0..8);
        return "bit flip".into();
    }
    how.into()
}
