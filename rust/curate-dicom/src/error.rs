//! Why a file could not be read: a kind for summaries, and a message that names the
//! problem and where in the file it was found.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No DICOM preamble, file meta group or recognisable data element at the start.
    NotDicom,
    /// The file ends inside an element, item or sequence.
    Truncated,
    /// Structurally impossible content: lengths past their container, stray items, too deep.
    Corrupt,
    /// The operating system refused or failed the read.
    Unreadable,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotDicom => "not_dicom",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unreadable => "unreadable",
        }
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
