//! Scanning one file: open, stat, parse the header into a sink, and classify the outcome.

use crate::error::RowError;
use crate::walk::{not_a_file, FileStat};
use curate_dicom::{parse_into, ErrorKind, Header, Input, Selection, Sink};
use std::fs::File;
use std::path::Path;

/// The index's `status` column: every value it can hold. The scanner sets the first
/// four; the others are set in Python, for rows no scan of a file produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The header was parsed to its end (Pixel Data, or the end of the file).
    Ok,
    /// The file could not be read, or its header is broken (the row's `error` says why).
    Error,
    /// The file is not DICOM.
    NotDicom,
    /// A media directory file: valid DICOM, but not an instance to curate.
    Dicomdir,
    /// A file of an earlier scan that is no longer there: set by the index's merge of a
    /// rescan with its previous rows, never by the scanner.
    Vanished,
    /// A row pulled from a PACS, not a local file: never set by the scanner.
    Remote,
}

impl Status {
    /// Every status, in a fixed order (the order `curate._native.STATUSES` has).
    pub const ALL: &'static [Status] =
        &[Status::Ok, Status::Error, Status::NotDicom, Status::Dicomdir, Status::Vanished, Status::Remote];

    /// The status as the `status` column writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::NotDicom => "not_dicom",
            Status::Dicomdir => "dicomdir",
            Status::Vanished => "vanished",
            Status::Remote => "remote",
        }
    }
}

/// The file columns of one index row (the attribute values went to the sink).
#[derive(Debug, Default)]
pub struct FileRecord {
    pub file_size: Option<u64>,
    pub mtime_us: Option<i64>,
    pub status: Option<Status>,
    pub error: Option<RowError>,
    pub header: Header,
    /// The path is a folder (only an unchecked path from a list can be one).
    pub folder: bool,
}

impl FileRecord {
    fn failed(error: RowError) -> Self {
        FileRecord { status: Some(Status::Error), error: Some(error), ..FileRecord::default() }
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
        Err(e) => return FileRecord::failed(open_error(&e)),
    };
    let FileStat { size, mtime_us } = match known {
        Some(stat) => stat,
        None => match file.metadata() {
            Ok(meta) if meta.is_dir() => {
                let mut row = FileRecord::failed(RowError::new(ErrorKind::IsDirectory, "a folder, not a file"));
                row.folder = true;
                return row;
            }
            Ok(meta) if !meta.is_file() => return FileRecord::failed(not_a_file(&meta)),
            Ok(meta) => FileStat::of(&meta),
            Err(e) => {
                return FileRecord::failed(RowError::new(ErrorKind::Unreadable, format_args!("cannot stat: {e}")))
            }
        },
    };
    let (header, error) = parse_into(Input::random(&file, size), selection, sink);
    let (status, error) = match error {
        None if header.dicomdir => (Status::Dicomdir, None),
        None => (Status::Ok, None),
        Some(e) if e.kind == ErrorKind::NotDicom => (Status::NotDicom, Some(e.into())),
        Some(e) => (Status::Error, Some(e.into())),
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
            Err(e) => return FileRecord::failed(open_error(&e)),
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
pub fn walk_error(error: &RowError) -> FileRecord {
    FileRecord::failed(error.clone())
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

fn open_error(e: &std::io::Error) -> RowError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::Vanished,
        _ => ErrorKind::Unreadable,
    };
    RowError::new(kind, format_args!("cannot open: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_listed_once_in_its_fixed_order() {
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["ok", "error", "not_dicom", "dicomdir", "vanished", "remote"]);
    }

    #[test]
    fn errors_of_the_file_itself_keep_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let selection = Selection::new(vec![]).unwrap();
        let mut sink = curate_dicom::Collect::new(0);
        let gone = scan_file(&dir.path().join("gone.dcm"), None, false, &selection, &mut sink);
        assert_eq!(gone.status(), Status::Error);
        let error = gone.error.unwrap();
        assert_eq!(error.kind(), ErrorKind::Vanished);
        assert!(error.starts_with("vanished: cannot open: "), "{error}");
        let folder = scan_file(dir.path(), None, true, &selection, &mut sink);
        assert!(folder.folder);
        assert_eq!(folder.error.as_deref(), Some("is_directory: a folder, not a file"));
        std::fs::write(dir.path().join("text.dcm"), b"plain text, long enough to look at").unwrap();
        let text = scan_file(&dir.path().join("text.dcm"), None, false, &selection, &mut sink);
        assert_eq!(text.status(), Status::NotDicom);
        assert!(text.error.unwrap().starts_with("not_dicom: no 'DICM' marker"));
    }
}
