//! Content digests for the run log (BLAKE3), and the one pass over a file's pixel bytes
//! that de-identification makes: hashed for the written file's digest and OR-ed cell by
//! cell for the check of their unused bits, while the bytes are in the cache once.

use pyo3::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Bytes read at a time: a multiple of every cell size, small enough to stay in cache.
const CHUNK: usize = 1 << 20;

/// The BLAKE3 digest (hex) of a file's bytes (the GIL let go): the run log's content
/// digest, at several times sha256's speed. Read, not mapped: a file cut short while
/// it is hashed is an error, not a crash.
#[pyfunction]
pub(crate) fn file_blake3(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| {
        let mut hasher = blake3::Hasher::new();
        let length = File::open(&path)?.metadata()?.len();
        read_range(Some(&mut hasher), &path, 0, length, 0, true)?;
        Ok::<_, std::io::Error>(hasher.finalize().to_hex().to_string())
    })
    .map_err(PyErr::from)
}

/// An incremental BLAKE3 digest of bytes handed in, and of ranges of files.
#[pyclass(name = "Blake3", module = "curate._native")]
pub(crate) struct Blake3 {
    hasher: blake3::Hasher,
}

#[pymethods]
impl Blake3 {
    #[new]
    fn new() -> Self {
        Blake3 { hasher: blake3::Hasher::new() }
    }

    /// Add `data`.
    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Add `length` bytes of the file at `path` from `offset` (the GIL let go). With
    /// `cell_bytes` (1, 2, 4 or 8), they are also read as cells of that size from
    /// `offset` on: returns (the OR of every whole cell, the OR of the bytes after the
    /// last whole cell); (0, 0) without. Raises OSError for a file shorter than that.
    #[pyo3(signature = (path, offset, length, cell_bytes=0, little_endian=true))]
    fn update_from_file(
        &mut self,
        py: Python<'_>,
        path: PathBuf,
        offset: u64,
        length: u64,
        cell_bytes: usize,
        little_endian: bool,
    ) -> PyResult<(u64, u64)> {
        read_cells(py, Some(&mut self.hasher), &path, offset, length, cell_bytes, little_endian)
    }

    /// The digest so far, in hex.
    fn hexdigest(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// What :meth:`Blake3.update_from_file` returns, without hashing: (the OR of every whole
/// cell of `cell_bytes` bytes, the OR of the bytes after the last whole cell) of `length`
/// bytes of the file at `path` from `offset` (the GIL let go).
#[pyfunction]
#[pyo3(signature = (path, offset, length, cell_bytes, little_endian=true))]
pub(crate) fn file_cells_or(
    py: Python<'_>,
    path: PathBuf,
    offset: u64,
    length: u64,
    cell_bytes: usize,
    little_endian: bool,
) -> PyResult<(u64, u64)> {
    read_cells(py, None, &path, offset, length, cell_bytes, little_endian)
}

/// :func:`read_range` for Python, the GIL let go, after the cell size is checked.
fn read_cells(
    py: Python<'_>,
    hasher: Option<&mut blake3::Hasher>,
    path: &PathBuf,
    offset: u64,
    length: u64,
    cell_bytes: usize,
    little_endian: bool,
) -> PyResult<(u64, u64)> {
    if !matches!(cell_bytes, 0 | 1 | 2 | 4 | 8) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("cells are 1, 2, 4 or 8 bytes, not {cell_bytes}")));
    }
    py.detach(|| read_range(hasher, path, offset, length, cell_bytes, little_endian)).map_err(PyErr::from)
}

/// Read `length` bytes of `path` from `offset`, into `hasher` where there is one, and
/// OR them as cells of `cell_bytes` where that is not 0.
fn read_range(
    mut hasher: Option<&mut blake3::Hasher>,
    path: &PathBuf,
    offset: u64,
    length: u64,
    cell_bytes: usize,
    little_endian: bool,
) -> std::io::Result<(u64, u64)> {
    let file = File::open(path)?;
    let mut buffer = vec![0u8; CHUNK.min(length as usize).max(1)];
    // Byte i of the range is OR-ed into lanes[i % 8]: chunks are multiples of 8 bytes,
    // so a lane always holds the same byte of a cell.
    let mut lanes = [0u8; 8];
    let whole = if cell_bytes == 0 { 0 } else { length - length % cell_bytes as u64 };
    let mut tail = 0u64;
    let mut done = 0u64;
    while done < length {
        let take = (length - done).min(buffer.len() as u64) as usize;
        let chunk = &mut buffer[..take];
        file.read_exact_at(chunk, offset + done).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => std::io::Error::new(
                e.kind(),
                format!("{} ends before byte {} of the range to read", path.display(), offset + length),
            ),
            _ => e,
        })?;
        if let Some(hasher) = hasher.as_deref_mut() {
            hasher.update(chunk);
        }
        if cell_bytes != 0 {
            let in_cells = (whole.saturating_sub(done)).min(take as u64) as usize;
            or_lanes(&chunk[..in_cells], &mut lanes);
            tail |= chunk[in_cells..].iter().fold(0u64, |acc, &b| acc | b as u64);
        }
        done += take as u64;
    }
    Ok((if cell_bytes == 0 { 0 } else { fold_cells(&lanes, cell_bytes, little_endian) }, tail))
}

/// OR `bytes` into `lanes`, byte i into lane i % 8 (`bytes` starts at a multiple of 8).
fn or_lanes(bytes: &[u8], lanes: &mut [u8; 8]) {
    let mut words = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for word in &mut words {
        acc |= u64::from_ne_bytes(word.try_into().expect("8 bytes"));
    }
    for (lane, byte) in lanes.iter_mut().zip(acc.to_ne_bytes()) {
        *lane |= byte;
    }
    for (i, &byte) in words.remainder().iter().enumerate() {
        lanes[i] |= byte;
    }
}

/// The OR of every cell, from the OR of each of the 8 byte positions.
fn fold_cells(lanes: &[u8; 8], cell_bytes: usize, little_endian: bool) -> u64 {
    lanes.chunks_exact(cell_bytes).fold(0u64, |acc, cell| {
        let mut value = 0u64;
        for i in 0..cell_bytes {
            let byte = if little_endian { cell[cell_bytes - 1 - i] } else { cell[i] };
            value = (value << 8) | byte as u64;
        }
        acc | value
    })
}
