"""The native pass over a file's bytes: BLAKE3 digests, and the OR of their cells that
the check of unused pixel bits reads, compared with hashlib-free references (BLAKE3's
published vector, the incremental digest of the same bytes) and with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from curate._native import Blake3, file_blake3, file_cells_or

#: BLAKE3 of no bytes, and of b"abc", as its specification's reference gives them.
EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
ABC = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"


def test_digests_are_blake3s(tmp_path):
    empty, abc = tmp_path / "empty", tmp_path / "abc"
    empty.write_bytes(b"")
    abc.write_bytes(b"abc")
    assert file_blake3(empty) == EMPTY and Blake3().hexdigest() == EMPTY
    assert file_blake3(abc) == ABC
    hasher = Blake3()
    hasher.update(b"a")
    hasher.update_from_file(abc, 1, 2)
    assert hasher.hexdigest() == ABC


@pytest.mark.parametrize("seed", range(40))
def test_cells_are_ored_as_numpy_reads_them_and_every_byte_is_hashed(tmp_path, seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 64)) if seed % 4 == 0 else int(rng.integers(1, 3_000_000))
    # Sparse bits, so that an OR that missed a cell would show.
    data = (rng.integers(0, 256, size, dtype=np.uint8) & rng.integers(0, 256, size, dtype=np.uint8)).tobytes()
    data = bytes(b if rng.random() < 0.001 else b & 0x0F for b in data[:4096]) + data[4096:]
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    offset = int(rng.integers(0, size + 1))
    length = int(rng.integers(0, size - offset + 1))
    width = int(rng.choice([1, 2, 4, 8]))
    little = bool(rng.integers(0, 2))
    part = data[offset : offset + length]
    hasher = Blake3()
    hasher.update(b"header")
    cells_or, tail_or = hasher.update_from_file(path, offset, length, width, little)
    whole = Blake3()
    whole.update(b"header" + part)
    assert hasher.hexdigest() == whole.hexdigest()
    count = len(part) // width
    dtype = np.dtype(f"u{width}").newbyteorder("<" if little else ">")
    assert cells_or == (int(np.bitwise_or.reduce(np.frombuffer(part, dtype, count))) if count else 0)
    tail = part[count * width :]
    assert tail_or == (int(np.bitwise_or.reduce(np.frombuffer(tail, np.uint8))) if tail else 0)
    # The same ORs without the digest.
    assert file_cells_or(path, offset, length, width, little) == (cells_or, tail_or)


def test_a_file_shorter_than_the_range_and_a_bad_cell_size_are_errors(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match="ends before"):
        Blake3().update_from_file(path, 4, 100)
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        Blake3().update_from_file(path, 0, 10, 3)
    with pytest.raises(OSError, match="ends before"):
        file_cells_or(path, 4, 100, 2)
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        file_cells_or(path, 0, 10, 16)
    with pytest.raises(FileNotFoundError):
        file_blake3(tmp_path / "missing")
