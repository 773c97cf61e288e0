//! The header parser: from the first byte of a file to the start of Pixel Data.
//!
//! It walks elements in file order, reads only those the selection names (and the few the
//! parser itself needs: Transfer Syntax, Specific Character Set, the Media Storage SOP
//! Class that marks a DICOMDIR), descends only into sequences that hold a selected
//! attribute, and skips everything else by length. Undefined-length sequences are walked
//! item by item, but defined-length items inside them are still skipped whole.

use crate::charset::Charset;
use crate::error::{tag_str, ErrorKind, ParseError};
use crate::input::{Input, InputError};
use crate::selection::{Node, Selection, Target};
use crate::sink::{Collect, Sink};
use crate::value::{self, Value};
use crate::vr::Vr;
use flate2::read::DeflateDecoder;
use std::borrow::Cow;

const UNDEFINED: u32 = 0xffff_ffff;
const ITEM: u32 = 0xfffe_e000;
const ITEM_END: u32 = 0xfffe_e00d;
const SEQUENCE_END: u32 = 0xfffe_e0dd;
const META_GROUP_LENGTH: u32 = 0x0002_0000;
const TRANSFER_SYNTAX: u32 = 0x0002_0010;
const MEDIA_STORAGE_SOP_CLASS: u32 = 0x0002_0002;
const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;
const DIRECTORY_RECORD_SEQUENCE: u32 = 0x0004_1220;
const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";
/// Deeper nesting than this is a hostile or broken file, not a real object.
const MAX_DEPTH: usize = 64;
/// Largest value the parser will hold in memory for a selected attribute.
const MAX_VALUE_BYTES: u32 = 64 << 20;

pub mod ts {
    pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
    pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    pub const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";
    pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
}

/// How data elements are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Syntax {
    explicit: bool,
    big_endian: bool,
}

const IMPLICIT_LE: Syntax = Syntax { explicit: false, big_endian: false };
const EXPLICIT_LE: Syntax = Syntax { explicit: true, big_endian: false };
const EXPLICIT_BE: Syntax = Syntax { explicit: true, big_endian: true };

/// Everything the scan keeps from one file's header.
#[derive(Debug, Default)]
pub struct Header {
    /// Transfer Syntax UID from the file meta group; `None` for files without one.
    pub transfer_syntax: Option<String>,
    /// Byte offset of the top-level Pixel Data element's tag (not known in deflated files).
    pub pixel_data_offset: Option<u64>,
    /// Length of the top-level Pixel Data value as its element header declares it:
    /// `Some(None)` for an undefined length (encapsulated fragments); `None` without
    /// Pixel Data.
    pub pixel_data_length: Option<Option<u32>>,
    /// The file is a DICOMDIR (a media directory, not an image).
    pub dicomdir: bool,
    /// Columns whose value was present but not valid for its type (kept null).
    pub invalid: Vec<usize>,
    /// Bytes fetched from the file.
    pub bytes_read: u64,
}

/// A parsed header, and the problem that stopped parsing early if there was one.
/// Values read before the problem are kept: they help a user find the broken file.
#[derive(Debug)]
pub struct Parsed {
    pub header: Header,
    /// One slot per selected column.
    pub values: Vec<Option<Value>>,
    pub error: Option<ParseError>,
}

/// Parse the header of a DICOM file from `input`, keeping the selected values.
pub fn parse(input: Input<'_>, selection: &Selection) -> Parsed {
    let mut sink = Collect::new(selection.columns.len());
    let (header, error) = parse_into(input, selection, &mut sink);
    Parsed { header, values: sink.values, error }
}

/// Parse the header of a DICOM file from `input`, handing selected values to `sink`.
pub fn parse_into(input: Input<'_>, selection: &Selection, sink: &mut dyn Sink) -> (Header, Option<ParseError>) {
    let mut parser = Parser {
        input,
        selection,
        sink,
        header: Header::default(),
        charset: Charset::default(),
        syntax: EXPLICIT_LE,
        element: None,
        meta_group_length: None,
        salvaged: None,
    };
    let error = parser.run().err().or(parser.salvaged.take());
    parser.header.bytes_read += parser.input.bytes_read();
    (parser.header, error)
}

/// Parse a header held in memory (tests, fuzzing, callers that already read the bytes).
pub fn parse_bytes(data: &[u8], selection: &Selection) -> Parsed {
    parse(Input::random(data, data.len() as u64), selection)
}

/// How a data set ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// Its defined length was used up (or the file ended cleanly at top level).
    End,
    ItemEnd,
    SequenceEnd,
    PixelData,
    /// A stray item of defined length, stepped over: the data set goes on.
    Skipped,
}

struct ElementHeader {
    tag: u32,
    vr: Vr,
    len: u32,
}

struct Parser<'a, 's> {
    input: Input<'a>,
    selection: &'s Selection,
    sink: &'s mut dyn Sink,
    header: Header,
    charset: Charset,
    syntax: Syntax,
    /// The element being read, for error messages.
    element: Option<u32>,
    /// File Meta Information Group Length, where the file gives it.
    meta_group_length: Option<u32>,
    /// A defect the parser stepped over (a stray item of defined length): the row is an
    /// error, but it keeps the values read before and after it, as other readers do.
    salvaged: Option<ParseError>,
}

type Result<T> = std::result::Result<T, ParseError>;

impl<'a> Parser<'a, '_> {
    fn run(&mut self) -> Result<()> {
        let start = self.peek_up_to::<132>()?;
        if start.is_empty() {
            return Err(ParseError::new(ErrorKind::NotDicom, "empty file"));
        }
        let has_preamble = start.len() >= 132 && &start[128..132] == b"DICM";
        if has_preamble {
            self.skip(132)?;
        } else if start.starts_with(b"DICM") {
            self.skip(4)?;
        }
        if (has_preamble || start.starts_with(b"DICM")) && self.at_end()? {
            return Err(self.truncated("right after the 'DICM' marker"));
        }
        let meta_follows = *self.peek_up_to::<2>()? == [2, 0];
        if meta_follows {
            self.syntax = EXPLICIT_LE;
            self.parse_meta()?;
        } else if !has_preamble && !looks_like_dataset(&start) {
            return Err(ParseError::new(
                ErrorKind::NotDicom,
                "no 'DICM' marker at byte 128 and no DICOM data element at the start of the file",
            ));
        }
        let ts = self.header.transfer_syntax.clone();
        match ts.as_deref() {
            Some(ts::DEFLATED_LE) => {
                let input = std::mem::replace(&mut self.input, Input::random(&[][..], 0));
                let meta_bytes_read = input.bytes_read();
                self.input = Input::stream(DeflateDecoder::new(input.into_reader()), 0);
                self.syntax = EXPLICIT_LE;
                let result = self.parse_top_level();
                // Offsets in the inflated stream do not address the file.
                self.header.pixel_data_offset = None;
                self.header.bytes_read += meta_bytes_read; // the inflated stream counts the rest
                result
            }
            Some(ts::EXPLICIT_BE) => {
                self.syntax = EXPLICIT_BE;
                self.parse_top_level()
            }
            Some(ts::IMPLICIT_LE) => {
                self.syntax = self.sniff_little_endian(IMPLICIT_LE)?;
                self.parse_top_level()
            }
            Some(_) => {
                self.syntax = self.sniff_little_endian(EXPLICIT_LE)?;
                self.parse_top_level()
            }
            None => {
                self.syntax = if looks_explicit_be(&self.peek_up_to::<8>()?) {
                    EXPLICIT_BE
                } else {
                    self.sniff_little_endian(IMPLICIT_LE)?
                };
                self.parse_top_level()
            }
        }
    }

    fn parse_meta(&mut self) -> Result<()> {
        let root = &self.selection.root;
        let start = self.input.pos();
        loop {
            let next = self.peek_up_to::<2>()?;
            if *next != [2, 0] {
                // The group ends where its length says (the length counts the bytes after
                // its own 12-byte element); a file that stops short of that, or before the
                // Transfer Syntax that every meta group has, was cut.
                let declared_end = self.meta_group_length.map(|len| start + 12 + len as u64);
                let cut = next.is_empty()
                    && (declared_end.is_some_and(|end| self.input.pos() < end)
                        || self.header.transfer_syntax.is_none());
                if cut {
                    return Err(self.truncated("inside the file meta group"));
                }
                return Ok(());
            }
            let h = self.read_element_header()?;
            self.element_value(&h, root.get(h.tag).map_or(&[], |t| &t.columns))?;
        }
    }

    /// Writers that label implicit data as explicit (and the reverse) are common enough
    /// that the first element decides, as other readers do.
    fn sniff_little_endian(&mut self, declared: Syntax) -> Result<Syntax> {
        let b = self.peek_up_to::<6>()?;
        if b.len() < 6 {
            return Ok(declared);
        }
        let explicit = Vr::parse([b[4], b[5]]).is_some();
        Ok(Syntax { explicit, big_endian: false })
    }

    fn parse_top_level(&mut self) -> Result<()> {
        let root = &self.selection.root;
        match self.parse_dataset(root, None, 0)? {
            Stop::SequenceEnd | Stop::ItemEnd => {
                Err(ParseError::new(ErrorKind::Corrupt, "delimiter outside any sequence at top level"))
            }
            Stop::End | Stop::PixelData => Ok(()),
            Stop::Skipped => unreachable!("a skipped item does not end a data set"),
        }
    }

    /// Parse elements until `end` (an absolute offset), an item delimiter, or Pixel Data.
    fn parse_dataset(&mut self, node: &Node, end: Option<u64>, depth: usize) -> Result<Stop> {
        let mut cursor = 0;
        loop {
            if let Some(end) = end {
                if self.input.pos() >= end {
                    return Ok(Stop::End);
                }
            }
            let element_start = self.input.pos();
            // Nearly every element header lies wholly in the buffer: then the data set
            // cannot be at its end, and no further check is needed.
            let h = match self.buffered_element_header() {
                Some(h) => h,
                None if self.at_end()? => return self.end_of_input(depth),
                None => self.read_element_header_slow()?,
            };
            if ends_data_set(h.tag, depth) {
                match self.stop_at(&h, element_start, end)? {
                    Stop::Skipped => continue,
                    stop => return Ok(stop),
                }
            }
            if self.runs_past(&h, end) {
                return Err(past_item_end(&h, end));
            }
            let target = node.find(h.tag, &mut cursor);
            self.element(&h, target, depth)?;
        }
    }

    /// The input ends where an element header would start: the end of a top-level data
    /// set, or a file cut inside an item.
    #[cold]
    fn end_of_input(&self, depth: usize) -> Result<Stop> {
        match depth {
            0 => Ok(Stop::End),
            _ => Err(self.truncated("inside a sequence item")),
        }
    }

    /// How element `h`, which [`ends_data_set`], ends it: an item or sequence delimiter,
    /// or Pixel Data at top level (whose place and length are kept); an item tag outside
    /// a sequence is an error.
    fn stop_at(&mut self, h: &ElementHeader, element_start: u64, end: Option<u64>) -> Result<Stop> {
        match h.tag {
            ITEM_END => Ok(Stop::ItemEnd),
            SEQUENCE_END => Ok(Stop::SequenceEnd),
            ITEM => self.step_over_stray_item(h, element_start, end),
            _ => {
                self.header.pixel_data_offset = Some(element_start);
                self.header.pixel_data_length = Some(if h.len == UNDEFINED { None } else { Some(h.len) });
                Ok(Stop::PixelData)
            }
        }
    }

    /// Whether element `h`, of defined length, runs past `end`, where its item ends.
    #[inline]
    fn runs_past(&self, h: &ElementHeader, end: Option<u64>) -> bool {
        end.is_some_and(|end| h.len != UNDEFINED && self.input.pos() + h.len as u64 > end)
    }

    /// Read, skip or descend into the element whose header `h` was just read; `target`
    /// is what the selection wants of its tag here.
    #[inline]
    fn element(&mut self, h: &ElementHeader, target: Option<&Target>, depth: usize) -> Result<()> {
        let into_items = target.filter(|t| !t.items.is_empty());
        let is_sequence = h.vr == Vr::SQ || h.len == UNDEFINED || (into_items.is_some() && h.vr == Vr::UN);
        if h.tag == DIRECTORY_RECORD_SEQUENCE && depth == 0 {
            self.header.dicomdir = true;
        }
        if is_sequence {
            return self.sequence(h, into_items, depth);
        }
        let columns = target.map_or(&[][..], |t| &t.columns);
        if columns.is_empty() && !is_parser_tag(h.tag) {
            // Most elements: nobody asked for them.
            return self.skip_value(h);
        }
        self.element_value(h, columns)
    }

    /// A sequence: skipped whole where nothing in it is wanted and its length is known,
    /// else walked item by item in its own syntax.
    fn sequence(&mut self, h: &ElementHeader, into_items: Option<&Target>, depth: usize) -> Result<()> {
        if into_items.is_none() && h.len != UNDEFINED {
            return self.skip_value(h);
        }
        // Undefined-length UN holds implicit little endian (PS3.5 6.2.2).
        let inner = if h.vr == Vr::UN { IMPLICIT_LE } else { self.syntax };
        let outer = std::mem::replace(&mut self.syntax, inner);
        let result = self.parse_sequence(h, into_items, depth + 1);
        self.syntax = outer;
        result
    }

    fn parse_sequence(&mut self, h: &ElementHeader, target: Option<&Target>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new(
                ErrorKind::Corrupt,
                format!("sequences nested deeper than {MAX_DEPTH} levels at {}", tag_str(h.tag)),
            ));
        }
        let seq_tag = h.tag;
        let end = (h.len != UNDEFINED).then(|| self.input.pos() + h.len as u64);
        let mut index = 0u32;
        loop {
            if let Some(end) = end {
                if self.input.pos() >= end {
                    return Ok(());
                }
            }
            self.element = Some(seq_tag);
            let item = self.read_item_header()?;
            match item.tag {
                SEQUENCE_END => return Ok(()),
                ITEM => {}
                // Stray item delimiters after defined-length items: tolerated, as other readers do.
                ITEM_END => continue,
                other => {
                    return Err(ParseError::new(
                        ErrorKind::Corrupt,
                        format!("expected an item in sequence {}, found {}", tag_str(seq_tag), tag_str(other)),
                    ))
                }
            }
            let child = target.and_then(|t| t.item(index));
            index += 1;
            let item_end = (item.len != UNDEFINED).then(|| self.input.pos() + item.len as u64);
            if let (Some(item_end), Some(end)) = (item_end, end) {
                if item_end > end {
                    return Err(ParseError::new(
                        ErrorKind::Corrupt,
                        format!("an item of sequence {} runs past the end of the sequence", tag_str(seq_tag)),
                    ));
                }
            }
            if child.is_none() && item.len != UNDEFINED {
                self.skip_value(&item)?;
                continue;
            }
            let empty = Node::default();
            let node = child.unwrap_or(&empty);
            // A Specific Character Set inside an item applies to that item only.
            let charset = self.charset;
            let stop = self.parse_dataset(node, item_end, depth);
            self.charset = charset;
            match stop? {
                Stop::SequenceEnd if end.is_none() => return Ok(()),
                Stop::PixelData => unreachable!("pixel data stops only at top level"),
                _ => {}
            }
        }
    }

    /// Read or skip one element's value. `columns` are the selected columns it fills.
    fn element_value(&mut self, h: &ElementHeader, columns: &[usize]) -> Result<()> {
        if columns.is_empty() && !is_parser_tag(h.tag) {
            return self.skip_value(h);
        }
        if h.len > MAX_VALUE_BYTES {
            self.header.invalid.extend_from_slice(columns);
            return self.skip_value(h);
        }
        if let Some(size) = self.input.size() {
            if self.input.pos() + h.len as u64 > size {
                return Err(self.truncated(&format!("in the value of {} ({} bytes)", tag_str(h.tag), h.len)));
            }
        }
        let big_endian = self.syntax.big_endian;
        let bytes = match self.input.take(h.len as usize) {
            Ok(b) => b,
            Err(e) => return Err(Self::input_error(e, Some(h.tag))),
        };
        if h.tag <= SPECIFIC_CHARACTER_SET {
            read_parser_tag(&mut self.header, &mut self.charset, &mut self.meta_group_length, h.tag, bytes);
        }
        for &col in columns {
            if !self.sink.is_set(col) {
                let spec = &self.selection.columns[col];
                match value::decode(spec, h.vr, big_endian, &self.charset, bytes) {
                    Ok(Some(v)) => self.sink.put(col, v),
                    Ok(None) => {}
                    Err(_) => self.header.invalid.push(col),
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn skip_value(&mut self, h: &ElementHeader) -> Result<()> {
        match self.input.skip(h.len as u64) {
            Ok(()) => Ok(()),
            Err(e) => Err(Self::skip_error(e, h)),
        }
    }

    #[cold]
    fn skip_error(e: InputError, h: &ElementHeader) -> ParseError {
        match e {
            InputError::Eof { offset } => ParseError::new(
                ErrorKind::Truncated,
                format!("file ends at byte {offset}, inside the value of {} ({} bytes)", tag_str(h.tag), h.len),
            ),
            other => Self::input_error(other, Some(h.tag)),
        }
    }

    fn read_element_header(&mut self) -> Result<ElementHeader> {
        match self.buffered_element_header() {
            Some(h) => Ok(h),
            None => self.read_element_header_slow(),
        }
    }

    /// The next element header when it lies wholly in the buffer: decoded there, without
    /// copies. None near the end of the input.
    #[inline]
    fn buffered_element_header(&mut self) -> Option<ElementHeader> {
        let Syntax { explicit, big_endian } = self.syntax;
        let b: &[u8; 12] = self.input.buffered(12)?.try_into().ok()?;
        let (h, size) = decode_element_header(b, explicit, big_endian);
        self.element = Some(h.tag);
        self.input.consume(size);
        Some(h)
    }

    /// Near the end of the input: fetch only as many bytes as the header needs, so that a
    /// file ending right after a short header is read to its end and no further.
    #[cold]
    fn read_element_header_slow(&mut self) -> Result<ElementHeader> {
        let Syntax { explicit, big_endian } = self.syntax;
        let mut b = self.peek_header(8)?;
        let tag = read_tag(&b, big_endian);
        self.element = Some(tag);
        let long =
            (tag >> 16) as u16 != 0xfffe && explicit && Vr::parse([b[4], b[5]]).is_some_and(|vr| vr.has_long_length());
        if long {
            b = self.peek_header(12)?;
        }
        let (h, size) = decode_element_header(&b, explicit, big_endian);
        self.skip(size as u64)?;
        Ok(h)
    }

    fn read_item_header(&mut self) -> Result<ElementHeader> {
        let big_endian = self.syntax.big_endian;
        let header =
            |b: &[u8]| ElementHeader { tag: read_tag(b, big_endian), vr: Vr::UN, len: read_u32(&b[4..8], big_endian) };
        if let Some(b) = self.input.buffered(8) {
            let h = header(b);
            self.input.consume(8);
            return Ok(h);
        }
        let b = self.peek_header(8)?;
        self.skip(8)?;
        Ok(header(&b))
    }

    fn peek_header(&mut self, n: usize) -> Result<[u8; 12]> {
        let element = self.element;
        let b = self.input.peek(n).map_err(|e| Self::input_error(e, element))?;
        let mut out = [0u8; 12];
        out[..n].copy_from_slice(b);
        Ok(out)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let element = self.element;
        self.input.skip(n).map_err(|e| Self::input_error(e, element))
    }

    fn truncated(&self, context: &str) -> ParseError {
        ParseError::new(ErrorKind::Truncated, format!("file ends at byte {} {context}", self.input.pos()))
    }

    /// Up to `N` next bytes, copied so the parser can keep reading.
    fn peek_up_to<const N: usize>(&mut self) -> Result<Peek<N>> {
        let element = self.element;
        let b = self.input.peek_up_to(N).map_err(|e| Self::input_error(e, element))?;
        let mut peek = Peek { bytes: [0; N], len: b.len() };
        peek.bytes[..b.len()].copy_from_slice(b);
        Ok(peek)
    }

    fn at_end(&mut self) -> Result<bool> {
        let element = self.element;
        self.input.at_end().map_err(|e| Self::input_error(e, element))
    }

    fn input_error(e: InputError, element: Option<u32>) -> ParseError {
        match e {
            InputError::Eof { offset } => {
                let place = element.map(|t| format!(" in or after element {}", tag_str(t))).unwrap_or_default();
                ParseError::new(ErrorKind::Truncated, format!("file ends at byte {offset}{place}"))
            }
            InputError::StreamCut { offset } => ParseError::new(
                ErrorKind::Truncated,
                format!("the deflated data set ends early, {offset} bytes into its inflated content"),
            ),
            InputError::Corrupt(message) => {
                ParseError::new(ErrorKind::Corrupt, format!("deflated data set: {message}"))
            }
            InputError::Io(e) => ParseError::new(ErrorKind::Unreadable, e.to_string()),
        }
    }
}

/// A few bytes looked at ahead, without a heap allocation.
struct Peek<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> std::ops::Deref for Peek<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Keep what the parser itself needs from one of the elements it reads for itself.
fn read_parser_tag(
    header: &mut Header,
    charset: &mut Charset,
    meta_group_length: &mut Option<u32>,
    tag: u32,
    bytes: &[u8],
) {
    match tag {
        TRANSFER_SYNTAX => {
            let uid = trim_uid(bytes);
            let text = crate::charset::ascii_str(uid).map_or_else(|| String::from_utf8_lossy(uid), Cow::Borrowed);
            header.transfer_syntax = Some(text.into_owned())
        }
        MEDIA_STORAGE_SOP_CLASS => header.dicomdir |= trim_uid(bytes) == DICOMDIR_SOP_CLASS.as_bytes(),
        SPECIFIC_CHARACTER_SET => *charset = Charset::from_value(bytes),
        META_GROUP_LENGTH if bytes.len() == 4 => {
            *meta_group_length = Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        _ => {}
    }
}

/// Whether an element with `tag` ends the data set it is read in, at `depth`: a delimiter
/// or an item tag (out of place here), or Pixel Data at top level (Float, Double Float,
/// or Pixel Data itself).
#[inline]
fn ends_data_set(tag: u32, depth: usize) -> bool {
    // One comparison rules out nearly every element for each half.
    (tag >= ITEM && matches!(tag, ITEM | ITEM_END | SEQUENCE_END))
        || (depth == 0
            && (0x7fe0_0008..=0x7fe0_0010).contains(&tag)
            && matches!(tag, 0x7fe0_0010 | 0x7fe0_0008 | 0x7fe0_0009))
}

impl Parser<'_, '_> {
    /// An item tag outside any sequence. One of defined length that stays within its data
    /// set is stepped over, as other readers do, and the row keeps what comes after it;
    /// its error is the row's all the same. Any other stops the parse.
    #[cold]
    fn step_over_stray_item(&mut self, h: &ElementHeader, element_start: u64, end: Option<u64>) -> Result<Stop> {
        if h.len == UNDEFINED || self.runs_past(h, end) {
            return Err(stray_item(element_start));
        }
        if self.skip_value(h).is_err() {
            return Err(stray_item(element_start)); // its length runs past the file's end
        }
        self.salvaged.get_or_insert_with(|| stray_item(element_start));
        Ok(Stop::Skipped)
    }
}

/// An item tag outside any sequence.
#[cold]
fn stray_item(element_start: u64) -> ParseError {
    ParseError::new(ErrorKind::Corrupt, format!("item tag (FFFE,E000) at byte {element_start} outside a sequence"))
}

/// An element runs past the end of its item (`end`, known: see [`Parser::runs_past`]).
#[cold]
fn past_item_end(h: &ElementHeader, end: Option<u64>) -> ParseError {
    let end = end.unwrap_or_default();
    let message = format!("element {} of length {} runs past the end of its item at byte {end}", tag_str(h.tag), h.len);
    ParseError::new(ErrorKind::Corrupt, message)
}

/// Elements the parser reads for itself, selected or not.
#[inline]
fn is_parser_tag(tag: u32) -> bool {
    // All in group 0002 or at (0008,0005): one comparison rules out nearly every element.
    tag <= SPECIFIC_CHARACTER_SET
        && matches!(tag, TRANSFER_SYNTAX | MEDIA_STORAGE_SOP_CLASS | SPECIFIC_CHARACTER_SET | META_GROUP_LENGTH)
}

/// Decode an element header from its first bytes (12 available; explicit VRs with a
/// 4-byte length use all 12). Returns the header and its size in bytes.
#[inline]
fn decode_element_header(b: &[u8; 12], explicit: bool, big_endian: bool) -> (ElementHeader, usize) {
    let tag = read_tag(b, big_endian);
    if (tag >> 16) as u16 == 0xfffe {
        return (ElementHeader { tag, vr: Vr::UN, len: read_u32(&b[4..8], big_endian) }, 8);
    }
    match explicit.then(|| Vr::parse_header([b[4], b[5]])).flatten() {
        Some((vr, true)) => (ElementHeader { tag, vr, len: read_u32(&b[8..12], big_endian) }, 12),
        Some((vr, false)) => (ElementHeader { tag, vr, len: read_u16(&b[6..8], big_endian) as u32 }, 8),
        // Implicit VR, or an explicit file with an implicit element in it. The VR is left
        // unknown: a skipped element needs only its length, and a selected one is read
        // by its column's dictionary VR (as UN values are).
        None => (ElementHeader { tag, vr: Vr::UN, len: read_u32(&b[4..8], big_endian) }, 8),
    }
}

fn read_u16(b: &[u8], big_endian: bool) -> u16 {
    let a = [b[0], b[1]];
    if big_endian {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn read_tag(b: &[u8], big_endian: bool) -> u32 {
    ((read_u16(&b[0..2], big_endian) as u32) << 16) | read_u16(&b[2..4], big_endian) as u32
}

/// A UI value without its padding (a trailing NUL, stray spaces).
fn trim_uid(bytes: &[u8]) -> &[u8] {
    let pad = |b: &u8| *b == 0 || *b == b' ';
    let start = bytes.iter().position(|b| !pad(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A file without preamble or meta group (ACR-NEMA style, or a raw data set) must start
/// with a plausible low group in ascending order: refuse anything else as not DICOM.
fn looks_like_dataset(start: &[u8]) -> bool {
    if start.len() < 8 {
        return false;
    }
    let group_le = u16::from_le_bytes([start[0], start[1]]);
    let plausible = |g: u16| (0x0002..=0x0028).contains(&g) && g % 2 == 0;
    if plausible(group_le) {
        let len_ok = Vr::parse([start[4], start[5]]).is_some()
            || u32::from_le_bytes([start[4], start[5], start[6], start[7]]) < 0x0100_0000;
        return len_ok;
    }
    looks_explicit_be(start)
}

fn looks_explicit_be(start: &[u8]) -> bool {
    start.len() >= 8 && u16::from_be_bytes([start[0], start[1]]) == 0x0008 && Vr::parse([start[4], start[5]]).is_some()
}
