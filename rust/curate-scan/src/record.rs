//! Scanning one file: open, stat, parse the header into a sink, and classify the outcome.

use crate::walk::{not_a_file, FileStat};
use curate_dicom::{parse_into, ErrorKind, Header, Input, Selection, Sink};
use std::fs::File;
use std::path::Path;

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
    /// The path is a folder (only an unchecked path from a list can be one).
    pub folder: bool,
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
/// `known` is the file's stat from the walk, where it made one: the size and time taken
/// before the file is read, so a later rescan that finds them changed reads it again.
/// An `unchecked` path (from a list, never looked at) may be anything: it is opened so
/// that a named pipe cannot block, and a folder comes back as `folder`, with no row.
pub fn scan_file(
    path: &Path,
    known: Option<FileStat>,
    unchecked: bool,
    selection: &Selection,
    sink: &mut dyn Sink,
) -> FileRecord {
    let file = match open(path, unchecked) {
        Ok(f) => f,
        Err(e) => return FileRecord::failed(Status::Error, open_error(&e)),
    };
    let FileStat { size, mtime_us } = match known {
        Some(stat) => stat,
        None => match file.metadata() {
            Ok(meta) if meta.is_dir() => {
                let mut row = FileRecord::failed(Status::Error, "is_directory: a folder, not a file".into());
                row.folder = true;
                return row;
            }
            Ok(meta) if !meta.is_file() => return FileRecord::failed(Status::Error, not_a_file(&meta)),
            Ok(meta) => FileStat::of(&meta),
            Err(e) => return FileRecord::failed(Status::Error, format!("unreadable: cannot stat: {e}")),
        },
    };
    let (header, error) = parse_into(Input::random(&file, size), selection, sink);
    let (status, error) = match error {
        None if header.dicomdir => (Status::Dicomdir, None),
        None => (Status::Ok, None),
        Some(e) if e.kind == ErrorKind::NotDicom => (Status::NotDicom, Some(e.to_string())),
        Some(e) => (Status::Error, Some(e.to_string())),
    };
    FileRecord { file_size: Some(size), mtime_us, status: Some(status), error, header, folder: false }
}

/// Stat one file without reading it: the listing an incremental rescan compares with
/// its index. The status is `ok` for a file that could be stat-ed.
pub fn stat_file(path: &Path, known: Option<FileStat>) -> FileRecord {
    let stat = match known {
        Some(stat) => stat,
        None => match std::fs::metadata(path) {
            Ok(meta) => FileStat::of(&meta),
            Err(e) => return FileRecord::failed(Status::Error, open_error(&e)),
        },
    };
    FileRecord {
        file_size: Some(stat.size),
        mtime_us: stat.mtime_us,
        status: Some(Status::Ok),
        ..FileRecord::default()
    }
}

/// A row for a path the walk could not enter.
pub fn walk_error(error: &str) -> FileRecord {
    FileRecord::failed(Status::Error, error.to_string())
}

fn open(path: &Path, unchecked: bool) -> std::io::Result<File> {
    #[cfg(unix)]
    if unchecked {
        use std::os::unix::fs::OpenOptionsExt;
        // A named pipe would wait for a writer; a terminal must not become ours.
        return std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path);
    }
    let _ = unchecked;
    File::open(path)
}

fn open_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("vanished: cannot open: {e}"),
        _ => format!("unreadable: cannot open: {e}"),
    }
}
