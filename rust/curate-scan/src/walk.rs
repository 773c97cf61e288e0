//! Turning the user's paths (files, folders, or both) into the sorted list of files to scan.
//!
//! A folder is walked recursively in name order. File types come from the directory
//! listing itself, so a plain file costs no extra system call; only symbolic links are
//! followed with a `stat` (archives are often assembled from links), and a link back to
//! a folder being walked is reported as a loop rather than followed forever. Anything
//! that cannot be listed becomes an entry with an error, so that it shows up in the
//! index instead of vanishing from it.
//!
//! A long list of files (a manifest) is handed on unchecked: the scan opens every file
//! anyway and learns its size and type from the open file, which saves a path lookup a
//! file. A folder such a list names after all is walked by the scan, in its place.

use crate::error::RowError;
use ahash::RandomState;
use curate_dicom::ErrorKind;
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One file to scan, or a place the walk could not enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    /// Why this path could not be walked; `None` for a file to parse.
    pub error: Option<RowError>,
    /// Size and modification time, when the walk already had to stat the file.
    pub stat: Option<FileStat>,
    /// A path from a list of files, not looked at: a file, unless opening it finds a
    /// folder (see [`walk`]).
    pub unchecked: bool,
}

/// What a `stat` says about a file that the index keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// Modification time in microseconds since the Unix epoch.
    pub mtime_us: Option<i64>,
}

impl FileStat {
    pub fn of(meta: &fs::Metadata) -> Self {
        let mtime_us = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_micros()).ok());
        FileStat { size: meta.len(), mtime_us }
    }
}

impl Entry {
    fn file(path: PathBuf) -> Self {
        Entry { path, error: None, stat: None, unchecked: false }
    }

    /// A file the walk has stat-ed already: the scan need not ask again.
    fn file_with(path: PathBuf, meta: &fs::Metadata) -> Self {
        Entry { path, error: None, stat: Some(FileStat::of(meta)), unchecked: false }
    }

    fn failed(path: PathBuf, error: RowError) -> Self {
        Entry { path, error: Some(error), stat: None, unchecked: false }
    }

    fn unchecked(path: PathBuf) -> Self {
        Entry { path, error: None, stat: None, unchecked: true }
    }
}

/// Below this many paths a list is stat-ed whole: it costs nothing worth saving.
const LIST_MIN: usize = 256;
/// Paths of a long list stat-ed to tell a list of files from one that names folders.
const LIST_SAMPLE: usize = 64;

/// Whether `roots` look like a list of files (a manifest, a query result): long, and an
/// even sample of it holds regular files only. Such a list is scanned without a `stat` a
/// path; a folder the sample missed is found when the scan opens it.
pub fn looks_like_file_list(roots: &[PathBuf]) -> bool {
    roots.len() >= LIST_MIN
        && (0..LIST_SAMPLE).all(|i| fs::metadata(&roots[i * roots.len() / LIST_SAMPLE]).is_ok_and(|m| m.is_file()))
}

/// The files in `folder` (found in a list of files, see [`looks_like_file_list`]), in
/// walk order, leaving out what the list names itself: a listed file, or everything
/// under a listed folder, has its own place in the list.
pub fn walk_listed_folder(folder: &Path, listed: &HashSet<&Path, RandomState>, emit: &mut dyn FnMut(Entry) -> bool) {
    let mut keep = |entry: Entry| {
        let named = entry.path.ancestors().take_while(|a| *a != folder).any(|a| listed.contains(a));
        named || emit(entry)
    };
    let mut walker = Walker { emit: &mut keep, folders: Vec::new(), stopped: false };
    walker.root(folder, fs::metadata(folder), None);
}

/// Every file under `roots`, in name order within each root; a file named twice is kept once.
pub fn collect(roots: &[PathBuf]) -> Vec<Entry> {
    let mut entries = Vec::new();
    walk(roots, None, false, &mut |entry| {
        entries.push(entry);
        true
    });
    entries
}

/// Hand every file under `roots` to `emit` as it is found, in the order of [`collect`],
/// without holding the list: a scan of millions of files walks in constant memory. `emit`
/// returns false to stop the walk. The roots are stat-ed in parallel on `pool` (else on
/// rayon's global pool): a long list of files is common (a manifest, a query result).
/// With `parallel_subtrees`, folders below each root are walked in parallel on `pool`
/// too; entries come in the same order, but each subtree is held until its turn.
pub fn walk(
    roots: &[PathBuf],
    pool: Option<&rayon::ThreadPool>,
    parallel_subtrees: bool,
    emit: &mut dyn FnMut(Entry) -> bool,
) {
    walk_roots(roots, pool, parallel_subtrees, false, emit)
}

/// [`walk`]; with `unchecked_lists`, a list of files ([`looks_like_file_list`]) is handed
/// on as it is, each path once, as [`Entry::unchecked`] entries: the scan that opens each
/// file finds its size and type anyway, and saves a `stat` (a path lookup) a file.
pub fn walk_roots(
    roots: &[PathBuf],
    pool: Option<&rayon::ThreadPool>,
    parallel_subtrees: bool,
    unchecked_lists: bool,
    emit: &mut dyn FnMut(Entry) -> bool,
) {
    if unchecked_lists && looks_like_file_list(roots) {
        let mut seen: HashSet<&Path, RandomState> = HashSet::default();
        for root in roots {
            if seen.insert(root.as_path()) && !emit(Entry::unchecked(root.clone())) {
                return;
            }
        }
        return;
    }
    let stat_all = || roots.par_iter().map(fs::metadata).collect::<Vec<io::Result<fs::Metadata>>>();
    let kinds = match pool {
        Some(pool) => pool.install(stat_all),
        None => stat_all(),
    };
    // A path named twice is scanned once, without a set of every path found (that would
    // grow with the tree): listed files are remembered, as the caller holds their list
    // anyway, and a listed folder inside another listed folder is left to the outer walk.
    let is_folder = |k: &io::Result<fs::Metadata>| k.as_ref().is_ok_and(fs::Metadata::is_dir);
    let mut listed_files: HashSet<&Path, RandomState> = HashSet::default();
    let mut listed_twice = false;
    for (root, _) in roots.iter().zip(&kinds).filter(|(_, k)| !is_folder(k)) {
        listed_twice |= !listed_files.insert(root.as_path());
    }
    let folders: Vec<(usize, &Path)> = roots
        .iter()
        .zip(&kinds)
        .enumerate()
        .filter(|(_, (_, k))| is_folder(k))
        .map(|(i, (r, _))| (i, r.as_path()))
        .collect();
    let walked_by_another = |i: usize, root: &Path| {
        folders.iter().any(|&(j, other)| if root == other { j < i } else { root.starts_with(other) })
    };
    // A plain list of distinct files (a manifest) needs no bookkeeping at all.
    let may_repeat = listed_twice || !folders.is_empty();
    let mut emitted: HashSet<PathBuf, RandomState> = HashSet::default();
    let mut emit_once = |entry: Entry| {
        let repeated = may_repeat && listed_files.contains(entry.path.as_path()) && !emitted.insert(entry.path.clone());
        repeated || emit(entry)
    };
    let mut walker = Walker { emit: &mut emit_once, folders: Vec::new(), stopped: false };
    for (i, (root, kind)) in roots.iter().zip(kinds).enumerate() {
        if is_folder(&kind) && walked_by_another(i, root) {
            continue;
        }
        walker.root(root, kind, pool.filter(|_| parallel_subtrees));
        if walker.stopped {
            return;
        }
    }
}

struct Walker<'e> {
    emit: &'e mut dyn FnMut(Entry) -> bool,
    /// The folders on the current path, each with its identity once one was needed. Only
    /// a followed link can close a loop, so identities are taken (one stat a folder) only
    /// when a link to a folder is followed, not for every folder walked.
    folders: Vec<(PathBuf, Option<FolderId>)>,
    stopped: bool,
}

impl Walker<'_> {
    fn push(&mut self, entry: Entry) {
        if !self.stopped && !(self.emit)(entry) {
            self.stopped = true;
        }
    }

    fn root(&mut self, root: &Path, metadata: io::Result<fs::Metadata>, parallel: Option<&rayon::ThreadPool>) {
        match metadata {
            Ok(meta) if meta.is_dir() => match parallel {
                Some(pool) => self.folder_in_parallel(root.to_path_buf(), Some(FolderId::of(&meta)), pool),
                None => self.folder(root.to_path_buf(), Some(FolderId::of(&meta))),
            },
            Ok(meta) if meta.is_file() => self.push(Entry::file_with(root.to_path_buf(), &meta)),
            Ok(meta) => self.push(Entry::failed(root.to_path_buf(), not_a_file(&meta))),
            Err(e) => self.push(Entry::failed(root.to_path_buf(), describe(&e, "cannot stat"))),
        }
    }

    /// Whether a folder on the current path is `id`, taking ancestors' identities as needed.
    fn is_ancestor(&mut self, id: FolderId) -> bool {
        self.folders.iter_mut().any(|(path, known)| {
            if known.is_none() {
                *known = fs::metadata(&*path).ok().map(|meta| FolderId::of(&meta));
            }
            *known == Some(id)
        })
    }

    /// Walk `dir`; `id` is its identity when it was reached through a link (or is a root).
    fn folder(&mut self, dir: PathBuf, id: Option<FolderId>) {
        let Some(children) = self.enter(&dir, id) else { return };
        self.folders.push((dir, id));
        for child in children {
            self.visit(child);
            if self.stopped {
                break;
            }
        }
        self.folders.pop();
    }

    /// [`Walker::folder`] with the subtrees of `dir`'s children walked in parallel on `pool`,
    /// then handed on in order. A few subtrees are walked at a time (a couple per thread),
    /// and each is held only until its turn: memory grows with the largest subtrees, not
    /// with the tree.
    fn folder_in_parallel(&mut self, dir: PathBuf, id: Option<FolderId>, pool: &rayon::ThreadPool) {
        let Some(children) = self.enter(&dir, id) else { return };
        let ancestors = vec![(dir, id)];
        let at_once = 2 * pool.current_num_threads().max(1);
        for chunk in children.chunks(at_once) {
            let subtrees: Vec<Vec<Entry>> = pool.install(|| {
                chunk
                    .par_iter()
                    .cloned()
                    .map(|child| {
                        let mut found = Vec::new();
                        let mut keep = |entry: Entry| {
                            found.push(entry);
                            true
                        };
                        let mut walker = Walker { emit: &mut keep, folders: ancestors.clone(), stopped: false };
                        walker.visit(child);
                        found
                    })
                    .collect()
            });
            for entry in subtrees.into_iter().flatten() {
                self.push(entry);
                if self.stopped {
                    return;
                }
            }
        }
    }

    /// The children of `dir` in name order, or None when it is a loop or cannot be listed
    /// (its row says why).
    fn enter(&mut self, dir: &Path, id: Option<FolderId>) -> Option<Vec<(PathBuf, Option<fs::FileType>)>> {
        if self.stopped {
            return None;
        }
        if id.is_some_and(|id| self.is_ancestor(id)) {
            let error = RowError::new(ErrorKind::SymlinkLoop, "a link leads back to a folder that contains it");
            self.push(Entry::failed(dir.to_path_buf(), error));
            return None;
        }
        let listing = match fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) => {
                self.push(Entry::failed(dir.to_path_buf(), describe(&e, "cannot list folder")));
                return None;
            }
        };
        let mut children: Vec<(PathBuf, Option<fs::FileType>)> = Vec::new();
        for item in listing {
            match item {
                Ok(item) if is_curates_own(&item.file_name()) => {}
                Ok(item) => children.push((item.path(), item.file_type().ok())),
                Err(e) => {
                    self.push(Entry::failed(dir.to_path_buf(), describe(&e, "cannot list folder")));
                    break;
                }
            }
        }
        // Siblings are `parent/name` with the same parent, so comparing whole paths as bytes
        // orders them as comparing paths does, without splitting each into components on
        // every comparison (which dominated walking a flat folder of many thousand files).
        children.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
        Some(children)
    }

    fn visit(&mut self, (path, file_type): (PathBuf, Option<fs::FileType>)) {
        match file_type {
            Some(t) if t.is_file() => self.push(Entry::file(path)),
            Some(t) if t.is_dir() => self.folder(path, None),
            // Links, and entries whose type the listing does not give: follow and look.
            _ => match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => self.folder(path, Some(FolderId::of(&meta))),
                Ok(meta) if meta.is_file() => self.push(Entry::file_with(path, &meta)),
                // Opening a named pipe would wait for a writer forever; a device may never end.
                Ok(meta) => self.push(Entry::failed(path, not_a_file(&meta))),
                Err(e) => self.push(Entry::failed(path, describe(&e, "cannot follow"))),
            },
        }
    }
}

/// What curate keeps beside the files it writes (`.curate-audit/`, `.curate-deid.json`,
/// `.curate-digitize/`): its own records, never DICOM, so not walked.
const OWN_PREFIX: &str = ".curate-";

fn is_curates_own(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(OWN_PREFIX.as_bytes())
}

/// A folder's identity on disk (device and inode where the platform has them).
#[derive(Clone, Copy, PartialEq, Eq)]
struct FolderId(u64, u64);

impl FolderId {
    #[cfg(unix)]
    fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FolderId(meta.dev(), meta.ino())
    }

    #[cfg(not(unix))]
    fn of(_meta: &fs::Metadata) -> Self {
        // No inode numbers: loops are not detected beyond the OS's own limits.
        FolderId(0, rand_unique())
    }
}

#[cfg(not(unix))]
fn rand_unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The row for something in the tree that is neither a file nor a folder.
pub(crate) fn not_a_file(meta: &fs::Metadata) -> RowError {
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            "a named pipe"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() || t.is_char_device() {
            "a device"
        } else {
            "a special file"
        }
    };
    #[cfg(not(unix))]
    let what = {
        let _ = meta;
        "a special file"
    };
    RowError::new(ErrorKind::NotAFile, format_args!("{what}, not a regular file; not read"))
}

/// The row for a path the walk could not stat, list or follow.
fn describe(e: &io::Error, action: &str) -> RowError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::Vanished,
        _ if e.raw_os_error() == Some(40) => ErrorKind::SymlinkLoop, // ELOOP
        _ => ErrorKind::Unreadable,
    };
    RowError::new(kind, format_args!("{action}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_loops_stopped_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/b/c/1.dcm"), b"x").unwrap();
        // A link back to a grandparent closes a loop; a link to a sibling folder does not.
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/c/up")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b/c"), root.join("a/side")).unwrap();
        let found = collect(&[root.to_path_buf()]);
        let rel = |e: &Entry| e.path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let files: Vec<_> = found.iter().filter(|e| e.error.is_none()).map(rel).collect();
        assert_eq!(files, ["a/b/c/1.dcm", "a/side/1.dcm"]);
        let loops: Vec<_> = found.iter().filter(|e| e.error.is_some()).map(rel).collect();
        assert_eq!(loops, ["a/b/c/up", "a/side/up"]);
        assert!(found.iter().filter_map(|e| e.error.as_deref()).all(|m| m.starts_with("symlink_loop: ")));
    }

    #[test]
    fn curates_own_records_beside_the_files_are_not_walked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("s/.curate-audit")).unwrap();
        fs::create_dir_all(root.join(".curate-digitize")).unwrap();
        fs::write(root.join("s/.curate-audit/deid.csv"), b"x").unwrap();
        fs::write(root.join(".curate-digitize/errors.csv"), b"x").unwrap();
        fs::write(root.join(".curate-deid.json"), b"{}").unwrap();
        fs::write(root.join(".curated.dcm"), b"x").unwrap();
        fs::write(root.join("s/1.dcm"), b"x").unwrap();
        let found = collect(&[root.to_path_buf()]);
        let rel: Vec<_> =
            found.iter().map(|e| e.path.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(rel, [".curated.dcm", "s/1.dcm"]);
    }

    #[cfg(unix)]
    #[test]
    fn parallel_subtrees_give_the_same_entries_in_the_same_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..40 {
            let folder = root.join(format!("p{}/s{}", i % 7, i % 3));
            fs::create_dir_all(&folder).unwrap();
            fs::write(folder.join(format!("{i}.dcm")), b"x").unwrap();
        }
        fs::write(root.join("top.dcm"), b"x").unwrap();
        std::os::unix::fs::symlink(root, root.join("p3/up")).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let mut parallel = Vec::new();
        walk(&[root.to_path_buf()], Some(&pool), true, &mut |e| {
            parallel.push(e);
            true
        });
        let sequential = collect(&[root.to_path_buf()]);
        assert_eq!(parallel, sequential);
        assert_eq!(sequential.iter().filter(|e| e.error.is_some()).count(), 1, "the loop, once");
    }

    #[test]
    fn overlapping_roots_give_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("a.dcm"), b"x").unwrap();
        fs::write(dir.path().join("b/1.dcm"), b"x").unwrap();
        fs::write(dir.path().join("b/c/2.dcm"), b"x").unwrap();
        let root = dir.path().to_path_buf();
        let roots =
            [root.join("b/c"), root.clone(), root.join("a.dcm"), root.join("b"), root.clone(), root.join("a.dcm")];
        let found: Vec<_> =
            collect(&roots).into_iter().map(|e| e.path.strip_prefix(&root).unwrap().to_path_buf()).collect();
        let expected: Vec<PathBuf> = ["a.dcm", "b/1.dcm", "b/c/2.dcm"].iter().map(PathBuf::from).collect();
        assert_eq!(found, expected, "nested and repeated folders and files are walked once, in the outer walk's order");
    }

    #[test]
    fn a_list_of_files_keeps_its_order_and_drops_repeats() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.dcm", "b.dcm", "c.dcm"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let named = |names: &[&str]| names.iter().map(|n| dir.path().join(n)).collect::<Vec<_>>();
        let listed = |roots: &[PathBuf]| collect(roots).into_iter().map(|e| e.path).collect::<Vec<_>>();
        let distinct = named(&["c.dcm", "a.dcm", "b.dcm"]);
        assert_eq!(listed(&distinct), distinct, "a manifest is scanned in its own order");
        // The same file twice, once through a redundant separator: one row.
        let mut repeated = named(&["c.dcm", "a.dcm"]);
        repeated.push(PathBuf::from(format!("{}//c.dcm", dir.path().display())));
        assert_eq!(listed(&repeated), named(&["c.dcm", "a.dcm"]));
    }

    #[cfg(unix)]
    #[test]
    fn named_pipes_are_reported_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.dcm"), b"x").unwrap();
        let pipe = dir.path().join("pipe.dcm");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status().map(|s| s.success());
        if made.ok() != Some(true) {
            return; // no mkfifo on this system
        }
        let found = collect(&[dir.path().to_path_buf(), pipe.clone()]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].path, dir.path().join("a.dcm"));
        assert_eq!(found[0].error, None);
        assert_eq!(found[1].path, pipe);
        assert_eq!(found[1].error.as_deref(), Some("not_a_file: a named pipe, not a regular file; not read"));
    }

    #[test]
    fn walks_sorted_and_reports_missing_roots() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/2.dcm"), b"x").unwrap();
        fs::write(dir.path().join("a.dcm"), b"x").unwrap();
        fs::write(dir.path().join("b/1.dcm"), b"x").unwrap();
        let missing = dir.path().join("nope");
        let found = collect(&[dir.path().to_path_buf(), missing.clone(), dir.path().join("a.dcm")]);
        let names: Vec<_> =
            found.iter().map(|e| e.path.strip_prefix(dir.path()).unwrap_or(&e.path).to_path_buf()).collect();
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
        fs::write(dir.path().join("d/f.dcm"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("d/back")).unwrap();
        let found = collect(&[dir.path().to_path_buf()]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].error.as_deref().unwrap().starts_with("symlink_loop:"), "{found:?}");
        assert!(found[1].error.is_none());
    }

    #[cfg(unix)]
    #[test]
    fn links_to_files_and_folders_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("x.dcm"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("x.dcm"), dir.path().join("y.dcm")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("dangling.dcm")).unwrap();
        let found = collect(&[dir.path().to_path_buf()]);
        let names: Vec<_> = found.iter().map(|e| e.path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["dangling.dcm", "x.dcm", "y.dcm"]);
        assert!(found[0].error.as_deref().unwrap().starts_with("vanished:"));
        assert!(found[1].error.is_none() && found[2].error.is_none());
    }
}
