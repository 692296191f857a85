//! The self-check: after the run, the state the replay reached must be the real directory.
//! Any difference means the recording missed or misread something (an operation not traced,
//! an offset followed wrongly), and every verdict built on it would be about another program.

use super::replay::ROOT;
use crate::image::Image;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The differences between the replayed live state and the real directory, one line per
/// name: a file only in one of them, or with other bytes. Files in `mapped` (shared memory)
/// are compared by name only.
pub(crate) fn differences(replayed: &Image, real: &Image, mapped: &[String]) -> Vec<String> {
    let under_root = |image: &Image| -> BTreeSet<PathBuf> {
        image
            .files
            .keys()
            .filter(|p| p.starts_with(ROOT))
            .cloned()
            .collect()
    };
    let (ours, theirs) = (under_root(replayed), under_root(real));
    let shown = |p: &Path| p.strip_prefix(ROOT).unwrap_or(p).display().to_string();
    let mut out = Vec::new();
    for p in ours.difference(&theirs) {
        out.push(format!("{}: in the replay, not in the directory", shown(p)));
    }
    for p in theirs.difference(&ours) {
        out.push(format!("{}: in the directory, not in the replay", shown(p)));
    }
    for p in ours.intersection(&theirs) {
        if mapped.iter().any(|m| Path::new(ROOT).join(m) == *p) {
            continue;
        }
        let (a, b) = (&replayed.files[p], &real.files[p]);
        if a != b {
            let first = a.iter().zip(b.iter()).position(|(x, y)| x != y);
            let at = first.unwrap_or(a.len().min(b.len()));
            out.push(format!(
                "{}: the replay holds {} bytes, the directory {}; they differ from byte {at}",
                shown(p),
                a.len(),
                b.len()
            ));
        }
    }
    let dirs = |image: &Image| -> BTreeSet<PathBuf> {
        image
            .dirs
            .iter()
            .filter(|p| p.starts_with(ROOT))
            .cloned()
            .collect()
    };
    for d in dirs(real).symmetric_difference(&dirs(replayed)) {
        out.push(format!("{}/: a directory in one of them only", shown(d)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(files: &[(&str, &[u8])]) -> Image {
        let mut i = Image::default();
        i.dirs.insert(PathBuf::from(ROOT));
        for (name, bytes) in files {
            i.files.insert(Path::new(ROOT).join(name), bytes.to_vec());
        }
        i
    }

    #[test]
    fn equal_states_show_no_difference_and_every_kind_of_difference_is_named() {
        let a = image(&[("x", b"1"), ("y", b"22")]);
        assert!(differences(&a, &a, &[]).is_empty());
        let b = image(&[("y", b"2\x002"), ("z", b"")]);
        let d = differences(&a, &b, &[]);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].starts_with("x: in the replay"));
        assert!(d[1].starts_with("z: in the directory"));
        assert!(d[2].contains("differ from byte 1"));
        // A shared-memory file is compared by name only.
        let c = image(&[("x", b"1"), ("y", b"other")]);
        assert!(differences(&a, &c, &["y".to_string()]).is_empty());
    }
}
