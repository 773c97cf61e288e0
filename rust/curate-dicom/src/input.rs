//! Buffered byte input that reads a file in small chunks and seeks over what nobody asked for.
//!
//! A header parser touches a few kilobytes at the front of a file; the rest (a large
//! sequence nobody selected, the pixel data) must cost one seek, not a read. Random-access
//! sources (files, byte slices) skip by moving an offset; a deflated stream can only skip
//! by decompressing and discarding.

use std::fs::File;
use std::io::{self, Read};

/// Bytes fetched per read from a random-access source: most headers fit in one, and
/// the few that do not cost one more small read.
const CHUNK: usize = 8 * 1024;
/// The first read of a file: most headers end within it.
const FIRST_READ: usize = 4 * 1024;

/// Something that can be read at an absolute offset without a shared cursor.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    #[cfg(windows)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(self, buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

enum Source<'a> {
    Random { src: Box<dyn ReadAt + 'a>, size: u64 },
    Stream(Box<dyn Read + 'a>),
}

/// Why a read could not be satisfied.
#[derive(Debug)]
pub enum InputError {
    /// The source ended `needed - available` bytes short.
    Eof {
        offset: u64,
    },
    /// A decoded stream (deflate) stops before its end marker: the file was cut short,
    /// even where the inflated bytes happen to end on an element boundary.
    StreamCut {
        offset: u64,
    },
    /// A decoded stream (deflate) is not valid.
    Corrupt(String),
    Io(io::Error),
}

/// A stream decoder reports a cut-off or invalid stream as an I/O error; say what it is.
fn stream_error(e: InputError, offset: u64) -> InputError {
    match e {
        InputError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => InputError::StreamCut { offset },
        InputError::Io(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData) => {
            InputError::Corrupt(e.to_string())
        }
        other => other,
    }
}

pub type InputResult<T> = Result<T, InputError>;

pub struct Input<'a> {
    source: Source<'a>,
    /// Working buffer: `buf[head..end]` holds fetched, unconsumed bytes. Its whole length
    /// stays initialised, so refilling it costs no zeroing.
    buf: Vec<u8>,
    head: usize,
    end: usize,
    /// Absolute offset of `buf[0]` in the source.
    base: u64,
    /// Total bytes fetched from the source (reads, not skips): what the scan cost.
    bytes_read: u64,
}

thread_local! {
    /// One working buffer per thread, handed from file to file: a scan parses millions of
    /// headers and should not allocate and clear a buffer for each.
    static SPARE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for Input<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // Keep only ordinary sizes: one huge value must not pin its memory forever.
        if buf.len() <= 4 * CHUNK {
            SPARE_BUFFER.with(|spare| spare.set(buf));
        }
    }
}

impl<'a> Input<'a> {
    pub fn random(src: impl ReadAt + 'a, size: u64) -> Self {
        Self::new(Source::Random { src: Box::new(src), size }, 0)
    }

    pub fn stream(src: impl Read + 'a, base: u64) -> Self {
        Self::new(Source::Stream(Box::new(src)), base)
    }

    fn new(source: Source<'a>, base: u64) -> Self {
        let mut buf = SPARE_BUFFER.with(|spare| spare.take());
        if buf.len() < CHUNK {
            buf = vec![0; CHUNK];
        }
        Input { source, buf, head: 0, end: 0, base, bytes_read: 0 }
    }

    /// Absolute offset of the next unread byte.
    pub fn pos(&self) -> u64 {
        self.base + self.head as u64
    }

    /// Size of the source when known (random access only).
    pub fn size(&self) -> Option<u64> {
        match &self.source {
            Source::Random { size, .. } => Some(*size),
            Source::Stream(_) => None,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    #[inline]
    fn available(&self) -> usize {
        self.end - self.head
    }

    /// Make at least `n` bytes available, or fail at end of input.
    #[inline]
    fn fill(&mut self, n: usize) -> InputResult<()> {
        if self.available() >= n {
            return Ok(());
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&mut self, n: usize) -> InputResult<()> {
        // Move unconsumed bytes to the front so the buffer only grows for large values.
        self.buf.copy_within(self.head..self.end, 0);
        self.base += self.head as u64;
        self.end -= self.head;
        self.head = 0;
        if self.buf.len() < n {
            self.buf.resize(n.max(CHUNK), 0);
        }
        while self.end < n {
            // Read what is needed, at least a chunk, never the whole of a buffer that an
            // earlier file's large value grew: a read costs the bytes it copies.
            let first = self.base == 0 && self.end == 0;
            let want = (n - self.end).max(if first { FIRST_READ } else { CHUNK });
            let stop = self.buf.len().min(self.end + want);
            let room = &mut self.buf[self.end..stop];
            let got = match &mut self.source {
                Source::Random { src, size } => {
                    let offset = self.base + self.end as u64;
                    let limit = size.saturating_sub(offset).min(room.len() as u64) as usize;
                    if limit == 0 {
                        0
                    } else {
                        read_retrying(|b| src.read_at(b, offset), &mut room[..limit])?
                    }
                }
                Source::Stream(r) => {
                    let offset = self.base + self.end as u64;
                    read_retrying(|b| r.read(b), room).map_err(|e| stream_error(e, offset))?
                }
            };
            self.end += got;
            self.bytes_read += got as u64;
            if got == 0 {
                return Err(InputError::Eof { offset: self.base + self.end as u64 });
            }
        }
        Ok(())
    }

    /// Look at the next `n` bytes without consuming them.
    #[inline]
    pub fn peek(&mut self, n: usize) -> InputResult<&[u8]> {
        self.fill(n)?;
        Ok(&self.buf[self.head..self.head + n])
    }

    /// The next `n` bytes if they are already buffered (no read is made).
    #[inline]
    pub fn buffered(&self, n: usize) -> Option<&[u8]> {
        (self.available() >= n).then(|| &self.buf[self.head..self.head + n])
    }

    /// Consume `n` buffered bytes (`n` at most what [`Input::buffered`] returned).
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.available());
        self.head += n.min(self.available());
    }

    /// As many of the next `n` bytes as exist (fewer at end of input).
    pub fn peek_up_to(&mut self, n: usize) -> InputResult<&[u8]> {
        match self.fill(n) {
            Ok(()) | Err(InputError::Eof { .. }) => {
                let end = self.end.min(self.head + n);
                Ok(&self.buf[self.head..end])
            }
            Err(e) => Err(e),
        }
    }

    /// Consume the next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> InputResult<&[u8]> {
        self.fill(n)?;
        let start = self.head;
        self.head += n;
        Ok(&self.buf[start..start + n])
    }

    /// True when no byte is left.
    pub fn at_end(&mut self) -> InputResult<bool> {
        match self.fill(1) {
            Ok(()) => Ok(false),
            Err(InputError::Eof { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Move past `n` bytes without reading them where the source allows it.
    #[inline]
    pub fn skip(&mut self, n: u64) -> InputResult<()> {
        if n <= self.available() as u64 {
            self.head += n as usize;
            return Ok(());
        }
        self.skip_far(n)
    }

    #[cold]
    fn skip_far(&mut self, n: u64) -> InputResult<()> {
        let target = self.pos().saturating_add(n);
        match &mut self.source {
            Source::Random { size, .. } => {
                if target > *size {
                    return Err(InputError::Eof { offset: *size });
                }
                self.head = 0;
                self.end = 0;
                self.base = target;
                Ok(())
            }
            Source::Stream(_) => {
                let mut left = n;
                while left > 0 {
                    if self.available() == 0 {
                        self.fill(1)?;
                    }
                    let k = (self.available() as u64).min(left) as usize;
                    self.head += k;
                    left -= k as u64;
                }
                Ok(())
            }
        }
    }

    /// Hand the rest of the source over as a plain reader (for deflated data).
    pub fn into_reader(mut self) -> Box<dyn Read + 'a> {
        let rest = self.buf[self.head..self.end].to_vec();
        let next = self.base + self.end as u64;
        let source = std::mem::replace(&mut self.source, Source::Stream(Box::new(io::empty())));
        match source {
            Source::Random { src, size } => {
                Box::new(io::Cursor::new(rest).chain(ReadAtReader { src, offset: next, size }))
            }
            Source::Stream(r) => Box::new(io::Cursor::new(rest).chain(r)),
        }
    }
}

struct ReadAtReader<'a> {
    src: Box<dyn ReadAt + 'a>,
    offset: u64,
    size: u64,
}

impl Read for ReadAtReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.size.saturating_sub(self.offset).min(buf.len() as u64) as usize;
        if limit == 0 {
            return Ok(0);
        }
        let n = self.src.read_at(&mut buf[..limit], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Read until `buf` is full or the source is exhausted, retrying on EINTR.
fn read_retrying(mut read: impl FnMut(&mut [u8]) -> io::Result<usize>, buf: &mut [u8]) -> InputResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Keep what arrived before the error: the next read reports it again (a cut
            // deflate stream stays cut), after the parser has used these bytes.
            Err(_) if got > 0 => break,
            Err(e) => return Err(InputError::Io(e)),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_beyond_buffer_moves_offset_without_reading() {
        let data = vec![7u8; 100_000];
        let mut input = Input::random(data.as_slice(), data.len() as u64);
        input.take(4).unwrap();
        input.skip(90_000).unwrap();
        assert_eq!(input.pos(), 90_004);
        assert_eq!(input.take(2).unwrap(), &[7, 7]);
        assert!(input.bytes_read() < 40_000, "read {} bytes", input.bytes_read());
    }

    #[test]
    fn skip_past_end_is_eof() {
        let data = [1u8; 10];
        let mut input = Input::random(&data[..], 10);
        assert!(matches!(input.skip(11), Err(InputError::Eof { .. })));
    }

    #[test]
    fn stream_skip_discards() {
        let data: Vec<u8> = (0..=255u8).cycle().take(50_000).collect();
        let mut input = Input::stream(io::Cursor::new(data), 0);
        input.skip(40_000).unwrap();
        assert_eq!(input.take(1).unwrap()[0], (40_000 % 256) as u8);
        assert!(matches!(input.skip(20_000), Err(InputError::Eof { .. })));
    }

    #[test]
    fn reads_copy_what_is_needed_not_the_whole_buffer() {
        let data = vec![3u8; 100_000];
        // A large value grows this thread's buffer, which the next file reuses.
        let mut first = Input::random(data.as_slice(), data.len() as u64);
        first.take(24_000).unwrap();
        drop(first);
        let mut next = Input::random(data.as_slice(), data.len() as u64);
        next.take(10).unwrap();
        assert_eq!(next.bytes_read(), FIRST_READ as u64, "a header starts with one small read");
        next.take(5_000).unwrap();
        assert_eq!(next.bytes_read(), (FIRST_READ + CHUNK) as u64, "then a chunk at a time");
    }

    #[test]
    fn peek_up_to_stops_at_end() {
        let data = [1u8, 2, 3];
        let mut input = Input::random(&data[..], 3);
        assert_eq!(input.peek_up_to(10).unwrap(), &[1, 2, 3]);
        assert!(!input.at_end().unwrap());
        input.skip(3).unwrap();
        assert!(input.at_end().unwrap());
    }
}
