//! The exceptions `curate._native` raises, and the one place Rust errors become them.
//!
//! `CurateError` is the base of every error curate raises; the Python package's own
//! errors subclass it too. Each native error also subclasses the built-in exception it
//! replaces, so callers that catch `ValueError` or `RuntimeError` keep working. A class
//! with two bases cannot come from `create_exception!`, so the classes are made with
//! Python's `type(name, bases, namespace)`, once a process.

use arrow_schema::ArrowError;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::PyTypeInfo;

const MODULE: &str = "curate._native";

/// An error of the binding, before it is raised in Python.
#[derive(Debug)]
pub(crate) enum Error {
    /// A column spec the scanner refuses: raised as `SelectionError`.
    Selection(String),
    /// A scan that cannot start or run: raised as `ScanError`.
    Scan(String),
}

impl From<curate_dicom::SelectionError> for Error {
    fn from(e: curate_dicom::SelectionError) -> Self {
        Error::Selection(e.to_string())
    }
}

/// The scanner reports failures to start (a thread pool, a thread) as Arrow errors.
impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error::Scan(e.to_string())
    }
}

/// Every error the binding raises goes through here.
impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| {
            let (class, message) = match e {
                Error::Selection(message) => (selection_error(py), message),
                Error::Scan(message) => (scan_error(py), message),
            };
            match class {
                Ok(class) => PyErr::from_type(class.clone(), message),
                Err(failed) => failed,
            }
        })
    }
}

static CURATE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SELECTION_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SCAN_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `CurateError(Exception)`.
pub(crate) fn curate_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    let class = CURATE_ERROR.get_or_try_init(py, || {
        new_class(py, "CurateError", &[py.get_type::<PyException>()], "Base of every error curate raises.")
    })?;
    Ok(class.bind(py))
}

/// `SelectionError(CurateError, ValueError)`.
pub(crate) fn selection_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    curate_subclass::<PyValueError>(py, &SELECTION_ERROR, "SelectionError", "A column spec the scanner refuses.")
}

/// `ScanError(CurateError, RuntimeError)`.
pub(crate) fn scan_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    curate_subclass::<PyRuntimeError>(py, &SCAN_ERROR, "ScanError", "A scan that cannot start or run.")
}

/// `name(CurateError, B)`, made once and kept in `cell`.
fn curate_subclass<'py, B: PyTypeInfo>(
    py: Python<'py>,
    cell: &'py PyOnceLock<Py<PyType>>,
    name: &str,
    doc: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    let class = cell.get_or_try_init(py, || {
        let bases = [curate_error(py)?.clone(), py.get_type::<B>()];
        new_class(py, name, &bases, doc)
    })?;
    Ok(class.bind(py))
}

/// `type(name, bases, {"__doc__": doc, "__module__": "curate._native"})`.
fn new_class<'py>(py: Python<'py>, name: &str, bases: &[Bound<'py, PyType>], doc: &str) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", MODULE)?;
    let bases = PyTuple::new(py, bases)?;
    let class = py.get_type::<PyType>().call1((name, bases, namespace))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}
