"""The bits of native Pixel Data outside the stored range, made to carry nothing.

A pixel cell of Bits Allocated bits holds Bits Stored bits of value, ending at High Bit
(PS3.5 8.1.1). The bits around them are unused, and old devices drew overlays there (the
retired embedded overlays: Overlay Bit Position in group 60xx, PS3.3 C.9.2): a name,
an ID or a date, in bits that a viewer shows once the overlay is turned on. The stored
bits are left exactly as they are; the unused ones are set to what carries no
information: zero, or for signed pixels the sign bit repeated above High Bit (the
sign extension most writers already store), so that no reader sees another value.

Most files are canonical already; :func:`canonical_pixels` reads the bytes once and
says so, and the pixel element is then still copied by the kernel.
"""

from __future__ import annotations

import numpy as np

#: The outcome the run's audit gives Pixel Data when its unused bits were rewritten.
CLEARED = "unused bits cleared"


def layout(ds) -> tuple[int, int, int, bool] | None:
    """(bits allocated, bits stored, high bit, signed) of native integer Pixel Data with
    unused bits, or None where it has none to clear (or is not native integer pixels)."""
    try:
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        high = int(ds.get("HighBit", stored - 1))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
    except (AttributeError, TypeError, ValueError):
        return None
    if allocated not in (8, 16, 32) or not 0 < stored < allocated or not stored - 1 <= high < allocated:
        return None
    return allocated, stored, high, signed


def _cells(ds) -> int:
    """How many pixel cells the header says the value holds."""
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * max(frames, 1)
    except (AttributeError, TypeError, ValueError):
        return 0


def canonical_pixels(data, ds, little_endian: bool = True) -> bytes | None:
    """`data` (the Pixel Data value) with its unused bits set as the module says, or
    None when they already are (or the pixels have no unused bits)."""
    found = layout(ds)
    if found is None:
        return None
    allocated, stored, high, signed = found
    width = allocated // 8
    count = min(len(data) // width, _cells(ds))
    if not count:
        return None
    dtype = np.dtype(f"u{width}").newbyteorder("<" if little_endian else ">")
    cells = np.frombuffer(data, dtype=dtype, count=count)
    low = high - stored + 1
    kept = ((1 << stored) - 1) << low
    above = ((1 << allocated) - 1) & ~((1 << (high + 1)) - 1)
    padding = bytes(data[count * width :])  # what follows the last pixel: an odd length's pad
    if not signed and not int(np.bitwise_or.reduce(cells)) & ~kept and not padding.strip(b"\0"):
        return None  # the common case, in one pass and no copy
    canonical = cells & dtype.type(kept)
    if signed and above:
        negative = (cells >> dtype.type(high)) & dtype.type(1)
        canonical |= negative * dtype.type(above)
    if np.array_equal(canonical, cells) and not padding.strip(b"\0"):
        return None
    return canonical.astype(dtype, copy=False).tobytes() + bytes(len(padding))
