//! `curate-dicom`: the DICOM header parser at the core of curate's scanner.
//!
//! It reads a file's header up to Pixel Data and returns the selected attributes as typed
//! values. It holds no Python: the PyO3 layer and the parallel scanner sit on top. It
//! never panics on bad input; problems come back as a [`ParseError`] beside whatever was
//! read before them.

pub mod charset;
pub mod error;
pub mod input;
pub mod parser;
pub mod selection;
pub mod sink;
pub mod value;
pub mod vr;

pub use error::{ErrorKind, ParseError};
pub use input::{Input, ReadAt};
pub use parser::{parse, parse_bytes, parse_into, Header, Parsed};
pub use selection::{ColumnSpec, Kind, PathStep, Selection, SelectionError};
pub use sink::{Collect, Sink};
pub use value::{Decoded, Value};
pub use vr::Vr;
