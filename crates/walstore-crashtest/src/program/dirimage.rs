//! Real directories to images and back.

use super::config::{io_err, ProgramError};
use super::replay::{sim_path, ROOT};
use crate::image::Image;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Reads a real directory into an image rooted at [`ROOT`].
pub fn read_dir_image(dir: &Path) -> Result<Image, ProgramError> {
    let mut image = Image::default();
    image.dirs.insert(PathBuf::from(ROOT));
    image.dirs.insert(PathBuf::from("/"));
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let real = dir.join(&rel);
        let entries = fs::read_dir(&real).map_err(io_err(format!("read {}", real.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", real.display())))?;
            let name = rel.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(io_err(format!("stat {}", name.display())))?;
            let sim = sim_path(&name.to_string_lossy());
            if kind.is_dir() {
                image.dirs.insert(sim);
                stack.push(name);
            } else if kind.is_file() {
                let bytes =
                    fs::read(entry.path()).map_err(io_err(format!("read {}", name.display())))?;
                image.files.insert(sim, bytes);
            }
        }
    }
    Ok(image)
}

/// Writes an image into `into` (emptied first) as a real directory tree.
pub fn write_image(image: &Image, into: &Path) -> io::Result<()> {
    if into.exists() {
        fs::remove_dir_all(into)?;
    }
    fs::create_dir_all(into)?;
    for d in &image.dirs {
        if let Ok(rel) = d.strip_prefix(ROOT) {
            fs::create_dir_all(into.join(rel))?;
        }
    }
    for (path, bytes) in &image.files {
        if let Ok(rel) = path.strip_prefix(ROOT) {
            let target = into.join(rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(target, bytes)?;
        }
    }
    Ok(())
}
