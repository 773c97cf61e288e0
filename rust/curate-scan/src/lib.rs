//! `curate-scan`: scan many DICOM files on all cores into Arrow record batches.
//!
//! One thread walks the paths in a deterministic order (name order within each folder)
//! and hands the files on in chunks of a batch; a private thread pool turns each chunk
//! into one record batch, values parsed straight into Arrow builders, with no barrier
//! between chunks; the batches go out in file order through a bounded channel. Walking
//! overlaps parsing, and neither the file list nor the rows are ever held whole, so
//! memory stays flat at any corpus size.

pub mod batch;
pub mod record;
pub mod walk;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use batch::BatchBuilder;
use curate_dicom::Selection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use walk::Entry;

pub use record::Status;

/// Rows per record batch unless the caller asks otherwise: large enough that building,
/// exporting and importing a batch (a hundred columns) costs little per row. A short
/// wave (a small tree, the end of a walk) is split smaller so every thread gets a share.
pub const DEFAULT_BATCH_SIZE: usize = 1024;

/// The smallest share a short wave is split into: below this, more batches cost more
/// than the parallelism gains.
const MIN_SPLIT: usize = 64;

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
    pub fn new(roots: &[PathBuf], selection: Selection, threads: usize, batch_size: usize) -> Result<Scan, ArrowError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("curate-scan-{i}"))
            .build()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        Ok(Scan {
            roots: roots.to_vec(),
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
        let threads = pool.current_num_threads();
        // Each thread has a couple of batches queued or being built: enough to never wait
        // for the walk, few enough that memory stays flat.
        let in_flight = threads * 2;
        let (chunk_tx, chunk_rx) = sync_channel::<Vec<Entry>>(in_flight);
        let walk_progress = progress.clone();
        let pool = Arc::new(pool);
        let walk_pool = pool.clone();
        // A panic in either thread must end the stream with an error, never look like a
        // shorter scan: the walk records how it ended, and the batch thread reports it.
        spawn("curate-scan-walk", move || {
            let mut files = Vec::with_capacity(batch_size.min(4096));
            let mut consumer_gone = false;
            // A listing is collected whole anyway: walk its subtrees in parallel.
            walk::walk(&roots, Some(&walk_pool), !parse, &mut |entry| {
                files.push(entry);
                walk_progress.found.fetch_add(1, Ordering::Relaxed);
                if files.len() == batch_size {
                    consumer_gone =
                        chunk_tx.send(std::mem::replace(&mut files, Vec::with_capacity(batch_size.min(4096)))).is_err();
                }
                !consumer_gone
            });
            walk_progress.walked.store(true, Ordering::Release);
            // The last, short chunk (all of a small tree) is shared between the threads.
            let share = files.len().div_ceil(threads).max(MIN_SPLIT);
            while !files.is_empty() && !consumer_gone {
                let rest = files.split_off(share.min(files.len()));
                consumer_gone = chunk_tx.send(std::mem::replace(&mut files, rest)).is_err();
            }
        })?;
        let (tx, rx) = sync_channel(2);
        let producer_schema = schema.clone();
        spawn("curate-scan-batches", move || {
            // Chunks are built on the pool as they come, with no barrier between them; the
            // batches go out in walk order.
            let mut pending: VecDeque<Receiver<Result<RecordBatch, ArrowError>>> = VecDeque::new();
            let forward = |done: Receiver<Result<RecordBatch, ArrowError>>| {
                let batch = done.recv().unwrap_or_else(|_| Err(scan_failed("a batch was lost")));
                tx.send(batch).is_ok()
            };
            for files in chunk_rx {
                let (done_tx, done_rx) = sync_channel(1);
                let (schema, selection, progress) = (producer_schema.clone(), selection.clone(), progress.clone());
                pool.spawn(move || {
                    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let mut builder = BatchBuilder::new(schema, &selection, files.len());
                        for entry in &files {
                            builder.add(entry, parse);
                            progress.done.fetch_add(1, Ordering::Relaxed);
                        }
                        builder.finish()
                    }));
                    let batch = built.unwrap_or_else(|panic| {
                        Err(scan_failed(&format!("parsing failed: {}", panic_message(&panic))))
                    });
                    let _ = done_tx.send(batch);
                });
                pending.push_back(done_rx);
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
            if !progress.walked() {
                let _ = tx.send(Err(scan_failed("the walk stopped before its end")));
            }
        })?;
        Ok(BatchStream { schema, rx })
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
