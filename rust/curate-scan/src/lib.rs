//! `curate-scan`: scan many DICOM files on all cores into Arrow record batches.
//!
//! One thread walks the paths in a deterministic order (name order within each folder)
//! and hands the files on in chunks of a batch; a private thread pool turns each chunk
//! into one record batch, values parsed straight into Arrow builders, with no barrier
//! between chunks; the batches go out in file order through a bounded channel. Walking
//! overlaps parsing, and neither the file list nor the rows are ever held whole, so
//! memory stays flat at any corpus size.

pub mod batch;
pub mod error;
pub mod record;
pub mod walk;

use ahash::RandomState;
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use batch::BatchBuilder;
use curate_dicom::Selection;
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use walk::Entry;

pub use batch::FILE_COLUMNS;
pub use curate_dicom::ErrorKind;
pub use error::RowError;
pub use record::Status;

/// Rows per record batch unless the caller asks otherwise: large enough that building,
/// exporting and importing a batch (a hundred columns) costs little per row (measured:
/// 512 rows 148k files/s, 1024 159k, 2048 165k, 4096 171k). The walk's last, short chunk
/// (all of a small tree) is split smaller so every thread gets a share.
pub const DEFAULT_BATCH_SIZE: usize = 4096;

/// The smallest share a short wave is split into: below this, more batches cost more
/// than the parallelism gains.
const MIN_SPLIT: usize = 64;

/// Files a parsing thread counts before it publishes them to the shared progress.
const PROGRESS_STEP: u64 = 64;

/// Counters of a running scan, readable from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    found: AtomicU64,
    done: AtomicU64,
    walked: AtomicBool,
}

impl Progress {
    /// Rows the walk has produced so far (files found, and paths it could not enter).
    pub fn found(&self) -> u64 {
        self.found.load(Ordering::Relaxed)
    }

    /// Rows parsed so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// The walk is over: `found` is the scan's final row count.
    pub fn walked(&self) -> bool {
        self.walked.load(Ordering::Acquire)
    }
}

/// A scan ready to run: nothing is walked or parsed until [`Scan::run`].
pub struct Scan {
    roots: Vec<PathBuf>,
    selection: Arc<Selection>,
    pool: rayon::ThreadPool,
    batch_size: usize,
    progress: Arc<Progress>,
    parse: bool,
}

impl Scan {
    /// Prepare a scan of `roots` (files and folders) on `threads` threads (0: every core).
    pub fn new(
        roots: impl Into<Vec<PathBuf>>,
        selection: Selection,
        threads: usize,
        batch_size: usize,
    ) -> Result<Scan, ArrowError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("curate-scan-{i}"))
            .build()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        Ok(Scan {
            roots: roots.into(),
            selection: Arc::new(selection),
            pool,
            batch_size: batch_size.max(1),
            progress: Arc::new(Progress::default()),
            parse: true,
        })
    }

    /// Only list the files with their size and modification time, reading none of them:
    /// what an incremental rescan compares with its index.
    pub fn stat_only(mut self) -> Scan {
        self.parse = false;
        self
    }

    /// The scan's counters; readable from another thread while it runs.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    pub fn schema(&self) -> SchemaRef {
        batch::schema(&self.selection)
    }

    /// Start walking and parsing in the background and stream the batches.
    pub fn run(self) -> Result<BatchStream, ArrowError> {
        let schema = self.schema();
        let Scan { roots, selection, pool, batch_size, progress, parse } = self;
        let roots = Arc::new(roots);
        let pool = Arc::new(pool);
        // Each thread builds a batch and one more chunk waits: enough that no thread waits
        // for the walk, few enough that memory stays flat (a batch is megabytes).
        let in_flight = pool.current_num_threads() + 1;
        let (chunk_tx, chunk_rx) = sync_channel::<Vec<Entry>>(in_flight);
        // A panic in either thread must end the stream with an error, never look like a
        // shorter scan: the walk records how it ended, and the batch thread reports it.
        let walk = Walk { roots: roots.clone(), pool: pool.clone(), parse, batch_size, progress: progress.clone() };
        spawn("curate-scan-walk", move || walk.run(chunk_tx))?;
        let chunks = Arc::new(Chunks { schema: schema.clone(), selection, progress, roots, parse, batch_size });
        let (tx, rx) = sync_channel(1);
        spawn("curate-scan-batches", move || build_in_order(&pool, &chunks, chunk_rx, in_flight, &tx))?;
        Ok(BatchStream { schema, rx })
    }
}

/// The walk thread's share of a scan: the files to scan, in chunks of a batch.
struct Walk {
    roots: Arc<Vec<PathBuf>>,
    pool: Arc<rayon::ThreadPool>,
    parse: bool,
    batch_size: usize,
    progress: Arc<Progress>,
}

impl Walk {
    /// Walk the roots, sending full chunks as they fill, then share the last, short
    /// chunk between the threads.
    fn run(self, chunks: SyncSender<Vec<Entry>>) {
        let (rest, consumer_gone) = self.send_full_chunks(&chunks);
        self.progress.found.fetch_add(rest.len() as u64, Ordering::Relaxed);
        self.progress.walked.store(true, Ordering::Release);
        if !consumer_gone {
            send_shared(rest, self.pool.current_num_threads(), &chunks);
        }
    }

    /// Walk, sending a chunk each time `batch_size` files are found: the files left over,
    /// and whether the consumer has gone (which stops the walk).
    fn send_full_chunks(&self, chunks: &SyncSender<Vec<Entry>>) -> (Vec<Entry>, bool) {
        let chunk = || Vec::with_capacity(self.batch_size.min(4096));
        let mut files = chunk();
        let mut consumer_gone = false;
        // A listing is collected whole anyway: walk its subtrees in parallel. A scan
        // leaves a list of files unchecked: opening each file tells what it is.
        // The count shared with the parsing threads moves a chunk at a time: a shared
        // counter touched for every file costs more than the file's own bookkeeping.
        walk::walk_roots(&self.roots, Some(&self.pool), !self.parse, self.parse, &mut |entry| {
            files.push(entry);
            if files.len() == self.batch_size {
                self.progress.found.fetch_add(files.len() as u64, Ordering::Relaxed);
                consumer_gone = chunks.send(std::mem::replace(&mut files, chunk())).is_err();
            }
            !consumer_gone
        });
        (files, consumer_gone)
    }
}

/// The last, short chunk (all of a small tree) is sent in shares, one for each thread.
fn send_shared(mut files: Vec<Entry>, threads: usize, chunks: &SyncSender<Vec<Entry>>) {
    let share = files.len().div_ceil(threads).max(MIN_SPLIT);
    while !files.is_empty() {
        let rest = files.split_off(share.min(files.len()));
        if chunks.send(std::mem::replace(&mut files, rest)).is_err() {
            return;
        }
    }
}

type BatchSender = SyncSender<Result<RecordBatch, ArrowError>>;
type BatchReceiver = Receiver<Result<RecordBatch, ArrowError>>;

/// The batch thread's share of a scan: build the walk's chunks on the pool as they come,
/// with no barrier between them, and send their batches on `out` in walk order, at most
/// `in_flight` chunks ahead of the consumer.
fn build_in_order(
    pool: &rayon::ThreadPool,
    chunks: &Arc<Chunks>,
    walked: Receiver<Vec<Entry>>,
    in_flight: usize,
    out: &BatchSender,
) {
    // Each chunk sends on its own channel: one batch, or several where a folder in a list
    // of files is walked in its place.
    let mut pending: VecDeque<BatchReceiver> = VecDeque::new();
    let forward = |done: BatchReceiver| done.iter().all(|batch| out.send(batch).is_ok());
    for files in walked {
        pending.push_back(build_on(pool, chunks.clone(), files));
        // The consumer hung up: stop parsing (and, by dropping the chunk receiver,
        // walking).
        while pending.len() >= in_flight {
            if !forward(pending.pop_front().expect("pending is not empty")) {
                return;
            }
        }
    }
    while let Some(done) = pending.pop_front() {
        if !forward(done) {
            return;
        }
    }
    if !chunks.progress.walked() {
        let _ = out.send(Err(scan_failed("the walk stopped before its end")));
    }
}

/// Build one chunk's batches on the pool; they come on the receiver returned. A panic
/// while building becomes an error there.
fn build_on(pool: &rayon::ThreadPool, chunks: Arc<Chunks>, files: Vec<Entry>) -> BatchReceiver {
    let (done_tx, done_rx) = sync_channel(1);
    pool.spawn(move || {
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| chunks.build(&files, &done_tx)));
        if let Err(panic) = built {
            let _ = done_tx.send(Err(scan_failed(&format!("parsing failed: {}", panic_message(&panic)))));
        }
    });
    done_rx
}

/// What turning a chunk of the walk into record batches needs.
struct Chunks {
    schema: SchemaRef,
    selection: Arc<Selection>,
    progress: Arc<Progress>,
    roots: Arc<Vec<PathBuf>>,
    parse: bool,
    batch_size: usize,
}

impl Chunks {
    /// Scan `files` into batches sent on `out`: one, unless a path from a list of files is
    /// a folder, which is walked here, in its place, a batch at a time. False when the
    /// consumer has gone.
    fn build(&self, files: &[Entry], out: &BatchSender) -> bool {
        let mut builder = BatchBuilder::new(self.schema.clone(), &self.selection, files.len());
        let mut listed: Option<HashSet<&Path, RandomState>> = None;
        // Progress is shared between threads: counted here, published every few files.
        let mut done = 0;
        for entry in files {
            if builder.add(entry, self.parse) {
                done += 1;
                if done == PROGRESS_STEP {
                    self.progress.done.fetch_add(done, Ordering::Relaxed);
                    done = 0;
                }
                continue;
            }
            let listed = listed.get_or_insert_with(|| self.roots.iter().map(PathBuf::as_path).collect());
            let mut open = true;
            walk::walk_listed_folder(&entry.path, listed, &mut |found| {
                builder.add(&found, self.parse);
                self.progress.found.fetch_add(1, Ordering::Relaxed);
                self.progress.done.fetch_add(1, Ordering::Relaxed);
                if builder.len() >= self.batch_size {
                    let full = std::mem::replace(
                        &mut builder,
                        BatchBuilder::new(self.schema.clone(), &self.selection, self.batch_size),
                    );
                    open = out.send(full.finish()).is_ok();
                }
                open
            });
            // The walk counted the folder as one row; its files took its place.
            self.progress.found.fetch_sub(1, Ordering::Relaxed);
            if !open {
                return false;
            }
        }
        self.progress.done.fetch_add(done, Ordering::Relaxed);
        builder.is_empty() || out.send(builder.finish()).is_ok()
    }
}

fn scan_failed(message: &str) -> ArrowError {
    ArrowError::ExternalError(format!("curate scan failed: {message}; the rows so far are incomplete").into())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), ArrowError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .map(drop)
        .map_err(|e| ArrowError::ExternalError(Box::new(e)))
}

/// Record batches in file order, as they are parsed.
pub struct BatchStream {
    schema: SchemaRef,
    rx: Receiver<Result<RecordBatch, ArrowError>>,
}

impl Iterator for BatchStream {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl RecordBatchReader for BatchStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, StringArray};
    use std::fs;

    fn scanned(roots: &[PathBuf], threads: usize) -> Vec<(String, String, Option<String>)> {
        let scan = Scan::new(roots, Selection::new(vec![]).unwrap(), threads, DEFAULT_BATCH_SIZE).unwrap();
        let progress = scan.progress();
        let mut rows = Vec::new();
        for batch in scan.run().unwrap() {
            let batch = batch.unwrap();
            let column = |name: &str| {
                batch.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone()
            };
            let (path, status, error) = (column("path"), column("status"), column("error"));
            for i in 0..batch.num_rows() {
                let error = (!error.is_null(i)).then(|| error.value(i).to_string());
                rows.push((path.value(i).to_string(), status.value(i).to_string(), error));
            }
        }
        assert_eq!(progress.found() as usize, rows.len(), "the count the progress bar shows is the row count");
        assert_eq!(progress.done() as usize, rows.len());
        rows
    }

    #[test]
    fn a_folder_in_a_long_list_of_files_is_walked_in_its_place_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files: Vec<PathBuf> = (0..300).map(|i| root.join(format!("f{i:03}.dcm"))).collect();
        for f in &files {
            fs::write(f, b"not dicom").unwrap();
        }
        fs::create_dir_all(root.join("sub/inner")).unwrap();
        for name in ["sub/a.dcm", "sub/b.dcm", "sub/inner/x.dcm", "sub/inner/y.dcm"] {
            fs::write(root.join(name), b"not dicom").unwrap();
        }
        // A list of files naming, where the sample that tells a list does not look, a folder,
        // a file and a folder inside it, and a file twice.
        let mut roots = files.clone();
        let sampled: HashSet<usize> = (0..64).map(|i| i * 304 / 64).collect();
        let mut free = (1..305).filter(|i| !sampled.contains(i) && !sampled.contains(&(i + 1)));
        let (at_sub, at_inner, at_a) = (free.next().unwrap(), free.nth(20).unwrap(), free.nth(20).unwrap());
        roots.insert(at_a, root.join("sub/a.dcm"));
        roots.insert(at_inner, root.join("sub/inner"));
        roots.insert(at_sub, root.join("sub"));
        roots.push(files[7].clone());
        assert_eq!(roots.len(), 304);
        assert!(walk::looks_like_file_list(&roots), "the sample sees files only");

        let rows = scanned(&roots, 2);
        let paths: Vec<PathBuf> = rows.iter().map(|r| PathBuf::from(&r.0)).collect();
        let mut expected = Vec::new();
        for r in &roots[..roots.len() - 1] {
            match r.strip_prefix(root).unwrap().to_str().unwrap() {
                "sub" => expected.push(root.join("sub/b.dcm")), // a.dcm and inner/ are listed themselves
                "sub/inner" => expected.extend([root.join("sub/inner/x.dcm"), root.join("sub/inner/y.dcm")]),
                _ => expected.push(r.clone()),
            }
        }
        assert_eq!(paths, expected);
        assert!(rows.iter().all(|r| r.1 == "not_dicom"), "every file was opened and read");
        // Where the sample finds a folder, the list is stat-ed whole: the folder's files come
        // in its walk, and listed ones inside it are not repeated.
        roots.insert(0, root.join("sub"));
        let paths: Vec<PathBuf> = scanned(&roots, 2).into_iter().map(|r| PathBuf::from(r.0)).collect();
        let sub = ["sub/a.dcm", "sub/b.dcm", "sub/inner/x.dcm", "sub/inner/y.dcm"].map(|n| root.join(n));
        assert_eq!(paths[..4], sub);
        assert_eq!(paths[4..], files[..]);
    }

    #[cfg(unix)]
    #[test]
    fn a_named_pipe_in_a_long_list_is_reported_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut roots: Vec<PathBuf> = (0..300).map(|i| dir.path().join(format!("f{i:03}"))).collect();
        for f in &roots {
            fs::write(f, b"x").unwrap();
        }
        let pipe = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status().map(|s| s.success());
        if made.ok() != Some(true) {
            return; // no mkfifo here
        }
        roots.insert(1, pipe.clone());
        let rows = scanned(&roots, 2);
        let row = rows.iter().find(|r| Path::new(&r.0) == pipe).unwrap();
        assert_eq!(row.1, "error");
        assert!(row.2.as_deref().unwrap().starts_with("not_a_file: a named pipe"), "{row:?}");
    }
}
