//! Why a file could not be read: a kind for summaries, and a message that names the
//! problem and where in the file it was found.

use std::fmt;

/// Why an index row holds no parsed header: the text before the colon of its `error`
/// column. This is the one list of error kinds a row can carry: the parser gives the
/// first four, the scanner's walk and open the others (the parser never does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No DICOM preamble, file meta group or recognisable data element at the start.
    NotDicom,
    /// The file ends inside an element, item or sequence.
    Truncated,
    /// Structurally impossible content: lengths past their container, stray items, too deep.
    Corrupt,
    /// The operating system refused or failed the read.
    Unreadable,
    /// The path was gone by the time it was listed, followed or opened (a dangling link,
    /// a file deleted during the scan).
    Vanished,
    /// A link leads back to a folder that contains it, or the system found too many links
    /// in a row to follow.
    SymlinkLoop,
    /// Neither a file nor a folder (a named pipe, a socket, a device): never opened.
    NotAFile,
    /// A folder where a file was expected.
    IsDirectory,
}

impl ErrorKind {
    /// Every kind, in a fixed order (the order `curate._native.ERROR_KINDS` has).
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::NotDicom,
        ErrorKind::Truncated,
        ErrorKind::Corrupt,
        ErrorKind::Unreadable,
        ErrorKind::Vanished,
        ErrorKind::SymlinkLoop,
        ErrorKind::NotAFile,
        ErrorKind::IsDirectory,
    ];

    /// The kind as the `error` column writes it, before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotDicom => "not_dicom",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unreadable => "unreadable",
            ErrorKind::Vanished => "vanished",
            ErrorKind::SymlinkLoop => "symlink_loop",
            ErrorKind::NotAFile => "not_a_file",
            ErrorKind::IsDirectory => "is_directory",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ParseError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ParseError { kind, message: message.into() }
    }
}

/// `kind: message`, so that a summary can group errors by the text before the colon.
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ParseError {}

/// `(gggg,eeee)` as DICOM writes tags.
pub fn tag_str(tag: u32) -> String {
    format!("({:04X},{:04X})", tag >> 16, tag & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_in_its_fixed_order() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        let expected = [
            "not_dicom",
            "truncated",
            "corrupt",
            "unreadable",
            "vanished",
            "symlink_loop",
            "not_a_file",
            "is_directory",
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn a_parse_error_reads_kind_colon_message() {
        assert_eq!(ParseError::new(ErrorKind::Truncated, "file ends").to_string(), "truncated: file ends");
    }
}
