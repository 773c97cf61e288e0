//! `curate._native`: the thin PyO3 layer over the scanner.
//!
//! Python hands in paths and resolved column specs; Rust walks and parses with the GIL
//! released and hands record batches back through the Arrow C stream interface
//! (`__arrow_c_stream__`), so no value crosses as a Python object. The module also
//! exports the index's row contract (`FILE_COLUMNS`, `STATUSES`, `ERROR_KINDS`) and the
//! exceptions it raises, and the content digests of files (`digest`).

mod digest;
mod error;
mod search;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use curate_dicom::{ColumnSpec, PathStep, Selection, Vr};
use curate_scan::{ErrorKind, Progress, Scan, Status, FILE_COLUMNS};
use error::Error;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// (name, [(tag, item index or None), ...], dictionary VR, multi-valued)
type ColumnTuple = (String, Vec<(u32, Option<u32>)>, String, bool);

fn to_spec((name, path, vr, multi): ColumnTuple) -> Result<ColumnSpec, Error> {
    let code: [u8; 2] = vr
        .as_bytes()
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Selection(format!("column {name:?}: VR {vr:?} is not a two-letter code")))?;
    let vr = Vr::parse(code).unwrap_or(Vr::UN);
    let path = path.into_iter().map(|(tag, item)| PathStep { tag, item }).collect();
    Ok(ColumnSpec::new(name, path, vr, multi))
}

/// A prepared scan: walking and parsing start when the stream is taken.
#[pyclass(name = "Scan", module = "curate._native", frozen)]
struct PyScan {
    progress: Arc<Progress>,
    pending: Mutex<Option<Scan>>,
}

#[pymethods]
impl PyScan {
    /// Rows found so far (files, plus paths that could not be walked); final once `walked`.
    #[getter]
    fn total(&self) -> u64 {
        self.progress.found()
    }

    /// Rows parsed so far.
    #[getter]
    fn done(&self) -> u64 {
        self.progress.done()
    }

    /// Whether the walk is over, so that `total` is the final row count.
    #[getter]
    fn walked(&self) -> bool {
        self.progress.walked()
    }

    /// Start the scan and export it as an Arrow C stream (PyCapsule protocol).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema; // the index schema is fixed by the selection
        let scan = self
            .pending
            .lock()
            .map_err(|_| Error::Scan("scan state poisoned".into()))?
            .take()
            .ok_or_else(|| Error::Scan("this scan was already started; open a new one".into()))?;
        let stream = py.detach(|| scan.run()).map_err(Error::from)?;
        let ffi = FFI_ArrowArrayStream::new(Box::new(stream));
        PyCapsule::new_with_value(py, ffi, c"arrow_array_stream")
    }
}

/// Prepare a scan of `columns` over `paths` (files and folders); with `parse=false`, a
/// listing: every file's size and modification time, no file read.
#[pyfunction]
#[pyo3(signature = (paths, columns, threads=0, batch_size=curate_scan::DEFAULT_BATCH_SIZE, parse=true))]
fn open_scan(
    paths: Vec<PathBuf>,
    columns: Vec<ColumnTuple>,
    threads: usize,
    batch_size: usize,
    parse: bool,
) -> PyResult<PyScan> {
    let specs = columns.into_iter().map(to_spec).collect::<Result<Vec<_>, Error>>()?;
    let selection = Selection::new(specs).map_err(Error::from)?;
    let scan = Scan::new(paths, selection, threads, batch_size).map_err(Error::from)?;
    let scan = if parse { scan } else { scan.stat_only() };
    Ok(PyScan { progress: scan.progress(), pending: Mutex::new(Some(scan)) })
}

/// The VR the standard dictionary (dicom-rs) gives a tag: "UN" for private or unknown tags.
#[pyfunction]
fn dictionary_vr(tag: u32) -> String {
    Vr::of_tag(tag).as_str().to_string()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_BATCH_SIZE", curate_scan::DEFAULT_BATCH_SIZE)?;
    let py = m.py();
    m.add("FILE_COLUMNS", PyTuple::new(py, FILE_COLUMNS)?)?;
    m.add("STATUSES", PyTuple::new(py, Status::ALL.iter().map(|s| s.as_str()))?)?;
    m.add("ERROR_KINDS", PyTuple::new(py, ErrorKind::ALL.iter().map(|k| k.as_str()))?)?;
    m.add("CurateError", error::curate_error(py)?)?;
    m.add("SelectionError", error::selection_error(py)?)?;
    m.add("ScanError", error::scan_error(py)?)?;
    m.add_class::<PyScan>()?;
    m.add_function(wrap_pyfunction!(open_scan, m)?)?;
    m.add_function(wrap_pyfunction!(dictionary_vr, m)?)?;
    m.add_class::<digest::Blake3>()?;
    m.add_function(wrap_pyfunction!(digest::file_blake3, m)?)?;
    m.add_function(wrap_pyfunction!(digest::file_cells_or, m)?)?;
    m.add_class::<search::Literals>()?;
    Ok(())
}
