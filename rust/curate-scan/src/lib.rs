//! `curate-scan`: scan many DICOM files on all cores into Arrow record batches.
//!
//! The file list is walked once and sorted, so a scan's row order is deterministic. Files
//! are then parsed in waves on a private thread pool: each thread turns a run of
//! consecutive files into one record batch, parsing values straight into Arrow builders,
//! and the batches go out in file order through a bounded channel, so memory stays flat
//! at any corpus size.

pub mod batch;
pub mod record;
pub mod walk;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use batch::BatchBuilder;
use curate_dicom::Selection;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use walk::Entry;

pub use record::Status;

/// Rows per record batch unless the caller asks otherwise: small enough that every
/// thread gets work on a small tree and progress moves smoothly.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// A scan ready to run: the files are known, nothing is parsed yet.
pub struct Scan {
    entries: Vec<Entry>,
    selection: Arc<Selection>,
    pool: rayon::ThreadPool,
    batch_size: usize,
    progress: Arc<AtomicU64>,
}

impl Scan {
    /// Walk `roots` and prepare a scan on `threads` threads (0: every core).
    pub fn new(
        roots: &[std::path::PathBuf],
        selection: Selection,
        threads: usize,
        batch_size: usize,
    ) -> Result<Scan, ArrowError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("curate-scan-{i}"))
            .build()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        let entries = pool.install(|| walk::collect(roots));
        Ok(Scan {
            entries,
            selection: Arc::new(selection),
            pool,
            batch_size: batch_size.max(1),
            progress: Arc::new(AtomicU64::new(0)),
        })
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
        let (tx, rx) = sync_channel(2);
        let producer_schema = schema.clone();
        std::thread::Builder::new()
            .name("curate-scan-batches".into())
            .spawn(move || {
                let Scan { entries, selection, pool, batch_size, progress } = self;
                // A wave gives every thread a couple of batches; waves keep memory bounded.
                let wave = batch_size * pool.current_num_threads() * 2;
                for files in entries.chunks(wave) {
                    let batches: Vec<_> = pool.install(|| {
                        files
                            .par_chunks(batch_size)
                            .map(|part| {
                                let mut builder = BatchBuilder::new(producer_schema.clone(), &selection, part.len());
                                for entry in part {
                                    builder.add(entry);
                                    progress.fetch_add(1, Ordering::Relaxed);
                                }
                                builder.finish()
                            })
                            .collect()
                    });
                    for batch in batches {
                        // The consumer hung up: stop parsing.
                        if tx.send(batch).is_err() {
                            return;
                        }
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
