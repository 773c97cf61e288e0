//! `curate-scan`: scan many DICOM files on all cores into Arrow record batches.
//!
//! The file list is walked once and sorted, so a scan's row order is deterministic. Files
//! are then parsed in consecutive chunks, each chunk in parallel on a private thread pool,
//! and every chunk becomes one record batch sent through a bounded channel: parsing runs
//! ahead of the consumer by at most two batches, so memory stays flat at any corpus size.

pub mod batch;
pub mod record;
pub mod walk;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use curate_dicom::Selection;
use rayon::prelude::*;
use record::{scan_file, walk_error, FileRecord};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use walk::Entry;

pub use record::Status;

/// Rows per record batch unless the caller asks otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 2048;

/// A scan ready to run: the files are known, nothing is parsed yet.
pub struct Scan {
    entries: Vec<Entry>,
    selection: Arc<Selection>,
    threads: usize,
    batch_size: usize,
    progress: Arc<AtomicU64>,
}

impl Scan {
    /// Walk `roots` and prepare a scan. `threads = 0` uses every core.
    pub fn new(roots: &[std::path::PathBuf], selection: Selection, threads: usize, batch_size: usize) -> Scan {
        Scan::from_entries(walk::collect(roots), selection, threads, batch_size)
    }

    pub fn from_entries(entries: Vec<Entry>, selection: Selection, threads: usize, batch_size: usize) -> Scan {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        Scan {
            entries,
            selection: Arc::new(selection),
            threads,
            batch_size: batch_size.max(1),
            progress: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Number of rows the scan will produce.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Files parsed so far; readable from another thread while the scan runs.
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    pub fn schema(&self) -> SchemaRef {
        batch::schema(&self.selection)
    }

    /// Start parsing in the background and stream the batches.
    pub fn run(self) -> Result<BatchStream, ArrowError> {
        let schema = self.schema();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(|i| format!("curate-scan-{i}"))
            .build()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        let (tx, rx) = sync_channel(2);
        let producer_schema = schema.clone();
        std::thread::Builder::new()
            .name("curate-scan-batches".into())
            .spawn(move || {
                let Scan { entries, selection, batch_size, progress, .. } = self;
                for chunk in entries.chunks(batch_size) {
                    let rows: Vec<FileRecord> = pool.install(|| {
                        chunk
                            .par_iter()
                            .map(|entry| {
                                let row = match &entry.error {
                                    Some(err) => walk_error(&entry.path, err, &selection),
                                    None => scan_file(&entry.path, &selection),
                                };
                                progress.fetch_add(1, Ordering::Relaxed);
                                row
                            })
                            .collect()
                    });
                    let batch = batch::to_batch(&producer_schema, &selection, &rows);
                    // The consumer hung up: stop parsing.
                    if tx.send(batch).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        Ok(BatchStream { schema, rx })
    }
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
