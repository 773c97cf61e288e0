//! Scanning one file: open, stat, parse the header, and classify the outcome.

use curate_dicom::{parse, ErrorKind, Header, Input, Selection};
use std::fs::File;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// The index's `status` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Error,
    NotDicom,
    /// A media directory file: valid DICOM, but not an instance to curate.
    Dicomdir,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::NotDicom => "not_dicom",
            Status::Dicomdir => "dicomdir",
        }
    }
}

/// One row of the index.
#[derive(Debug)]
pub struct FileRecord {
    pub path: String,
    pub file_size: Option<u64>,
    pub mtime_us: Option<i64>,
    pub status: Status,
    pub error: Option<String>,
    pub header: Header,
}

impl FileRecord {
    fn failed(path: &Path, status: Status, error: String, columns: usize) -> Self {
        FileRecord {
            path: path.to_string_lossy().into_owned(),
            file_size: None,
            mtime_us: None,
            status,
            error: Some(error),
            header: Header { values: vec![None; columns], ..Header::default() },
        }
    }
}

/// Scan one file. Never panics and never fails: every problem becomes the row's status.
pub fn scan_file(path: &Path, selection: &Selection) -> FileRecord {
    let columns = selection.columns.len();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return FileRecord::failed(path, Status::Error, open_error(&e), columns),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return FileRecord::failed(path, Status::Error, format!("unreadable: cannot stat: {e}"), columns),
    };
    if meta.is_dir() {
        return FileRecord::failed(path, Status::Error, "is_directory: a folder, not a file".into(), columns);
    }
    let size = meta.len();
    let mtime_us = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_micros()).ok());
    let parsed = parse(Input::random(&file, size), selection);
    let (status, error) = match parsed.error {
        None if parsed.header.dicomdir => (Status::Dicomdir, None),
        None => (Status::Ok, None),
        Some(e) if e.kind == ErrorKind::NotDicom => (Status::NotDicom, Some(e.to_string())),
        Some(e) => (Status::Error, Some(e.to_string())),
    };
    FileRecord {
        path: path.to_string_lossy().into_owned(),
        file_size: Some(size),
        mtime_us,
        status,
        error,
        header: parsed.header,
    }
}

/// A row for a path the walk could not enter.
pub fn walk_error(path: &Path, error: &str, selection: &Selection) -> FileRecord {
    FileRecord::failed(path, Status::Error, error.to_string(), selection.columns.len())
}

fn open_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("vanished: cannot open: {e}"),
        _ => format!("unreadable: cannot open: {e}"),
    }
}
