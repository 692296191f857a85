//! A post-crash disk image: the names and bytes that are on the disk after a crash, nothing
//! else. An image becomes a fresh simulated file system (all of it durable) on which the
//! engine is reopened, and can be saved to and loaded from a directory for a failure artifact.

use crate::simfs::state::{FsState, Inode};
use crate::simfs::SimFs;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Names and bytes after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Image {
    /// Directories.
    pub dirs: BTreeSet<PathBuf>,
    /// Files by path (two names of one file after a half-done rename are two entries).
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Image {
    /// A hash of the whole image, to check each distinct image once.
    pub fn digest(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    /// The image as a file system state where everything is durable.
    pub fn to_state(&self) -> FsState {
        let mut state = FsState {
            dirs: self.dirs.clone(),
            ..FsState::default()
        };
        for (path, bytes) in &self.files {
            let id = state.new_inode();
            let content = Arc::new(bytes.clone());
            state.inodes.insert(
                id,
                Inode {
                    live: Arc::clone(&content),
                    durable: content,
                    ..Inode::default()
                },
            );
            state.names.insert(path.clone(), id);
            state.durable_names.insert(path.clone(), id);
        }
        state
    }

    /// A fresh simulated file system holding the image.
    pub fn to_simfs(&self) -> SimFs {
        SimFs::from_state(self.to_state())
    }

    /// The image made of what survives a power cut right now: durable names, durable bytes.
    pub fn durable_of(state: &FsState) -> Image {
        Self::from_names(state, &state.durable_names, |i| i.durable.to_vec())
    }

    /// The image a process kill leaves: everything written to the OS (fault F15).
    pub fn live_of(state: &FsState) -> Image {
        Self::from_names(state, &state.names, |i| i.live.to_vec())
    }

    fn from_names(
        state: &FsState,
        names: &BTreeMap<PathBuf, u64>,
        content: impl Fn(&Inode) -> Vec<u8>,
    ) -> Image {
        let files = names
            .iter()
            .filter_map(|(p, id)| state.inodes.get(id).map(|i| (p.clone(), content(i))))
            .collect();
        Image {
            dirs: state.dirs.clone(),
            files,
        }
    }

    /// Saves the image under `dir` (`dirs.txt`, and one file per entry with `/` escaped).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let files = dir.join("files");
        fs::create_dir_all(&files)?;
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        fs::write(dir.join("dirs.txt"), dirs.join("\n"))?;
        for (path, bytes) in &self.files {
            fs::write(files.join(escape(path)), bytes)?;
        }
        Ok(())
    }

    /// Loads an image saved by [`Image::save`].
    pub fn load(dir: &Path) -> io::Result<Image> {
        let dirs = fs::read_to_string(dir.join("dirs.txt"))?
            .lines()
            .filter(|l| !l.is_empty())
            .map(PathBuf::from)
            .collect();
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir.join("files"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(unescape(&name), fs::read(entry.path())?);
        }
        Ok(Image { dirs, files })
    }
}

fn escape(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('%', "%25")
        .replace('/', "%2F")
}

fn unescape(name: &str) -> PathBuf {
    PathBuf::from(name.replace("%2F", "/").replace("%25", "%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trips_through_a_directory() {
        let mut image = Image::default();
        image.dirs.insert(PathBuf::from("/db"));
        image.files.insert(PathBuf::from("/db/wal"), vec![1, 2, 3]);
        image.files.insert(PathBuf::from("/db/a%b"), vec![]);
        let dir = tempfile::tempdir().expect("temporary directory");
        image.save(dir.path()).expect("save");
        let loaded = Image::load(dir.path()).expect("load");
        assert_eq!(loaded, image);
        assert_eq!(loaded.digest(), image.digest());
    }
}
