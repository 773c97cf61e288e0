//! Scanning one file: open, stat, parse the header into a sink, and classify the outcome.

use curate_dicom::{parse_into, ErrorKind, Header, Input, Selection, Sink};
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

/// The file columns of one index row (the attribute values went to the sink).
#[derive(Debug, Default)]
pub struct FileRecord {
    pub file_size: Option<u64>,
    pub mtime_us: Option<i64>,
    pub status: Option<Status>,
    pub error: Option<String>,
    pub header: Header,
}

impl FileRecord {
    fn failed(status: Status, error: String) -> Self {
        FileRecord { status: Some(status), error: Some(error), ..FileRecord::default() }
    }

    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Error)
    }
}

/// Scan one file. Never panics and never fails: every problem becomes the row's status.
pub fn scan_file(path: &Path, selection: &Selection, sink: &mut dyn Sink) -> FileRecord {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return FileRecord::failed(Status::Error, open_error(&e)),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return FileRecord::failed(Status::Error, format!("unreadable: cannot stat: {e}")),
    };
    if meta.is_dir() {
        return FileRecord::failed(Status::Error, "is_directory: a folder, not a file".into());
    }
    let size = meta.len();
    let mtime_us = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_micros()).ok());
    let (header, error) = parse_into(Input::random(&file, size), selection, sink);
    let (status, error) = match error {
        None if header.dicomdir => (Status::Dicomdir, None),
        None => (Status::Ok, None),
        Some(e) if e.kind == ErrorKind::NotDicom => (Status::NotDicom, Some(e.to_string())),
        Some(e) => (Status::Error, Some(e.to_string())),
    };
    FileRecord { file_size: Some(size), mtime_us, status: Some(status), error, header }
}

/// A row for a path the walk could not enter.
pub fn walk_error(error: &str) -> FileRecord {
    FileRecord::failed(Status::Error, error.to_string())
}

fn open_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("vanished: cannot open: {e}"),
        _ => format!("unreadable: cannot open: {e}"),
    }
}
