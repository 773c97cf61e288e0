"""The bits of native Pixel Data outside the stored range, made to carry nothing.

A pixel cell of Bits Allocated bits holds Bits Stored bits of value, ending at High Bit
(PS3.5 8.1.1). The bits around them are unused, and old devices drew overlays there (the
retired embedded overlays: Overlay Bit Position in group 60xx, PS3.3 C.9.2): a name,
an ID or a date, in bits that a viewer shows once the overlay is turned on. The stored
bits are left exactly as they are; the unused ones are set to what carries no
information: zero, or for signed pixels the sign bit repeated above High Bit (the
sign extension most writers already store), so that no reader sees another value.

Most files are canonical already: the OR of all their cells says so
(:func:`canonical_by_or`, from the one native pass that also hashes the bytes), and the
pixel element is then still copied by the kernel.
"""

from __future__ import annotations

import numpy as np

#: The outcome the run's audit gives Pixel Data when its unused bits were rewritten.
CLEARED = "unused bits cleared"


class BitLayoutError(ValueError):
    """The header does not say which bits of a pixel cell are its value."""


#: Overlay Bits Allocated and Overlay Bit Position (60xx,0100 and 0102): an overlay drawn
#: in the pixel cells' own bits (retired).
OVERLAY_BITS_ALLOCATED, OVERLAY_BIT_POSITION = 0x0100, 0x0102


def layout(ds) -> tuple[int, int, int, bool] | None:
    """(bits allocated, the lowest and the highest bit of the value, signed) of native
    integer Pixel Data with unused bits, or None where it has none to clear (1-bit
    cells, cells all value, pixels that are not native integers). A High Bit that
    cannot be is taken as Bits Stored - 1, as readers take it. A High Bit above that,
    which readers disagree on, keeps every bit up to it, both readings' value; with an
    overlay drawn in the cells as well, the file is refused (:class:`BitLayoutError`),
    and so is a cell size or a Bits Stored that cannot be."""
    allocated = _number(ds, "BitsAllocated")
    stored = _number(ds, "BitsStored")
    high = _number(ds, "HighBit", stored - 1 if stored is not None else None)
    representation = _number(ds, "PixelRepresentation")
    if allocated is None or stored is None or representation not in (0, 1):
        raise BitLayoutError("Bits Allocated, Bits Stored or Pixel Representation missing or not one number")
    signed = representation == 1
    if high is None:
        high = stored - 1
    if allocated in (1, 64):
        return None
    if allocated not in (8, 16, 32):
        raise BitLayoutError(f"Bits Allocated {allocated}")
    if not 0 < stored <= allocated:
        raise BitLayoutError(f"Bits Stored {stored} in cells of {allocated} bits")
    if stored == allocated:
        return None
    if not stored - 1 <= high < allocated:
        high = stored - 1
    low = high - stored + 1
    if low > 0:  # value bits declared above the low ones, which most readers take instead
        if _embedded_overlay(ds):
            raise BitLayoutError(f"High Bit {high} for {stored} bits stored, and an overlay in the cells")
        low = 0
    return allocated, low, high, signed


def _number(ds, keyword: str, default: int | None = None) -> int | None:
    """An attribute as one number: `default` where it is absent or empty, None where it
    holds something else (several values that differ, text)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    values = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    try:
        numbers = {int(v) for v in values}
    except (TypeError, ValueError):
        return None
    return numbers.pop() if len(numbers) == 1 else None


def _embedded_overlay(ds) -> bool:
    for element in ds:
        group, number = element.tag.group, element.tag.element
        if 0x6000 <= group <= 0x601E and not group % 2 and number in (OVERLAY_BITS_ALLOCATED, OVERLAY_BIT_POSITION):
            if number == OVERLAY_BIT_POSITION or (element.value or 1) != 1:
                return True
    return False


def canonical_by_or(found: tuple[int, int, int, bool], cells_or: int, tail_or: int) -> bool:
    """Whether pixels of the :func:`layout` `found` are canonical, as far as the OR of
    all their whole cells and the OR of their bytes after the last whole cell (an odd
    length's pad byte) tell: unsigned ones are when no unused bit is set anywhere;
    signed ones need each cell compared with its sign (:func:`canonical_pixels`)."""
    allocated, low, high, signed = found
    return not signed and not cells_or & ~_value_mask(low, high) and not tail_or


def _value_mask(low: int, high: int) -> int:
    return ((1 << (high - low + 1)) - 1) << low


def canonical_pixels(data, ds, little_endian: bool = True) -> bytes | None:
    """`data` (the Pixel Data value) with its unused bits set as the module says, or
    None when they already are (or the pixels have no unused bits)."""
    found = layout(ds)
    if found is None:
        return None
    allocated, low, high, signed = found
    width = allocated // 8
    # Every whole cell of the value, whatever Rows, Columns and frames say (a header
    # that says fewer must not make the rest unchecked, nor zeroed).
    count = len(data) // width
    if not count:
        return None
    dtype = np.dtype(f"u{width}").newbyteorder("<" if little_endian else ">")
    cells = np.frombuffer(data, dtype=dtype, count=count)
    kept = _value_mask(low, high)
    above = ((1 << allocated) - 1) & ~((1 << (high + 1)) - 1)
    padding = bytes(data[count * width :])  # an odd length's pad byte
    if canonical_by_or(found, int(np.bitwise_or.reduce(cells)), int(any(padding))):
        return None  # the common case, in one pass and no copy
    canonical = cells & dtype.type(kept)
    if signed and above:
        negative = (cells >> dtype.type(high)) & dtype.type(1)
        canonical |= negative * dtype.type(above)
    if np.array_equal(canonical, cells) and not padding.strip(b"\0"):
        return None
    return canonical.astype(dtype, copy=False).tobytes() + bytes(len(padding))
