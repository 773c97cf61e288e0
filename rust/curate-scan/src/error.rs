//! The error an index row carries: one of [`ErrorKind`] and a message, written to the
//! row's `error` column as `kind: message`.

use curate_dicom::{ErrorKind, ParseError};
use std::fmt;

/// Why a row holds no parsed header. The text is built once, as the `error` column
/// holds it (`kind: message`), so writing it to a batch copies it and nothing more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    kind: ErrorKind,
    /// `kind: message`.
    text: String,
}

impl RowError {
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        RowError { kind, text: format!("{}: {message}", kind.as_str()) }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message after `kind: `.
    pub fn message(&self) -> &str {
        &self.text[self.kind.as_str().len() + 2..]
    }

    /// `kind: message`, as the `error` column holds it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `kind: message`, so that a summary can group errors by the text before the colon.
impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The row's text, `kind: message`.
impl std::ops::Deref for RowError {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::error::Error for RowError {}

impl From<ParseError> for RowError {
    fn from(e: ParseError) -> Self {
        RowError::new(e.kind, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_kind_colon_message() {
        let e = RowError::new(ErrorKind::Vanished, format_args!("cannot open: {}", "gone"));
        assert_eq!(e.to_string(), "vanished: cannot open: gone");
        assert_eq!(&*e, "vanished: cannot open: gone");
        assert_eq!(e.kind(), ErrorKind::Vanished);
        assert_eq!(e.message(), "cannot open: gone");
    }

    #[test]
    fn a_parse_error_keeps_its_text() {
        let parsed = ParseError::new(ErrorKind::Truncated, "file ends at byte 7");
        assert_eq!(RowError::from(parsed.clone()).as_str(), parsed.to_string());
    }
}
