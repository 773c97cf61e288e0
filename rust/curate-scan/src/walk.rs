//! Turning the user's paths (files, folders, or both) into the sorted list of files to scan.
//!
//! A folder is walked recursively, following symbolic links (archives are often assembled
//! from links) with loop detection. Anything that cannot be listed becomes an entry with
//! an error, so that it shows up in the index instead of vanishing from it.

use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// One file to scan, or a place the walk could not enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    /// Why this path could not be walked (`kind: message`); `None` for a file to parse.
    pub error: Option<String>,
}

/// Every file under `roots`, sorted by path within each root and deduplicated.
pub fn collect(roots: &[PathBuf]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for root in roots {
        walk_root(root, &mut entries);
    }
    let mut seen = std::collections::HashSet::new();
    entries.retain(|e| seen.insert(e.path.clone()));
    entries
}

fn walk_root(root: &Path, out: &mut Vec<Entry>) {
    let walker = WalkDir::new(root).follow_links(true).sort_by_file_name();
    for item in walker {
        match item {
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) => out.push(Entry { path: entry.into_path(), error: None }),
            Err(err) => {
                let path = err.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                out.push(Entry { path, error: Some(describe(&err)) });
            }
        }
    }
}

fn describe(err: &walkdir::Error) -> String {
    if let Some(ancestor) = err.loop_ancestor() {
        return format!("symlink_loop: link points back to its ancestor {}", ancestor.display());
    }
    match err.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::NotFound => format!("vanished: {io}"),
        Some(io) => format!("unreadable: cannot list or stat: {io}"),
        None => format!("unreadable: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walks_sorted_and_reports_missing_roots() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/2.dcm"), b"x").unwrap();
        fs::write(dir.path().join("a.dcm"), b"x").unwrap();
        fs::write(dir.path().join("b/1.dcm"), b"x").unwrap();
        let missing = dir.path().join("nope");
        let found = collect(&[dir.path().to_path_buf(), missing.clone(), dir.path().join("a.dcm")]);
        let names: Vec<_> = found.iter().map(|e| e.path.strip_prefix(dir.path()).unwrap_or(&e.path).to_path_buf()).collect();
        assert_eq!(names[..3], [PathBuf::from("a.dcm"), PathBuf::from("b/1.dcm"), PathBuf::from("b/c/2.dcm")]);
        assert_eq!(found.len(), 4, "the explicit duplicate a.dcm is dropped");
        assert_eq!(found[3].path, missing);
        assert!(found[3].error.as_deref().unwrap().starts_with("vanished:"));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_is_an_entry_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("d/back")).unwrap();
        let found = collect(&[dir.path().to_path_buf()]);
        assert_eq!(found.len(), 1);
        assert!(found[0].error.as_deref().unwrap().starts_with("symlink_loop:"), "{found:?}");
    }
}
