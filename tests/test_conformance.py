"""Every default attribute the scanner returns equals what pydicom reads.

The comparison runs over every one of pydicom's bundled test files that both readers
accept. Values go through one normalisation (text trimmed of padding, numbers as numbers,
dates as dates, empty as null); every remaining difference is listed in KNOWN_DIFFERENCES
with the reason, so none is hidden.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pydicom
import pytest
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

import curate
from curate.index.tags import resolve_tags

# (file name, column) -> why the two readers differ.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}


def _pydicom_element(ds: pydicom.Dataset, path: tuple[tuple[int, int | None], ...]):
    node = ds
    for tag, item in path[:-1]:
        if tag not in node:
            return None
        seq = node[tag].value
        if item is None or not isinstance(seq, (list, pydicom.sequence.Sequence)) or len(seq) <= item:
            return None
        node = seq[item]
    tag = path[-1][0]
    return node[tag] if tag in node else None


def _scalar(value, vr: str):
    if value is None:
        return None
    if isinstance(value, PersonName):
        value = str(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if vr in ("IS", "US", "UL", "SS", "SL", "SV", "UV"):
        return int(value) if value != "" else None
    if vr in ("DS", "FL", "FD"):
        return float(value) if value != "" else None
    if vr == "DA":
        text = str(value).strip().replace(".", "")
        return dt.datetime.strptime(text, "%Y%m%d").date() if text else None
    text = str(value)
    text = text.rstrip(" \x00") if vr in ("LT", "ST", "UT", "UR") else text.strip(" \x00")
    return text


def _expected(elem, multi: bool):
    if elem is None or elem.value is None or elem.value == "" or elem.VR == "SQ":
        return None
    vr = elem.VR
    values = list(elem.value) if isinstance(elem.value, MultiValue) else [elem.value]
    values = [_scalar(v, vr) for v in values]
    if not multi:
        if len(values) > 1 and vr not in ("IS", "US", "UL", "SS", "SL", "DS", "FL", "FD", "DA"):
            # A single-valued text column keeps the whole value, backslashes included.
            return "\\".join(v or "" for v in values)
        values = values[:1]
        return values[0]
    if all(v in (None, "") for v in values):
        return None
    return values


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _pydicom_reads(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return None


def test_every_default_attribute_matches_pydicom(pydicom_test_dirs: list[Path]):
    table = curate.scan(pydicom_test_dirs)
    columns = resolve_tags()
    rows = table.to_pylist()
    compared_files = 0
    compared_values = 0
    mismatches = []
    for row in rows:
        if row["status"] != "ok":
            continue
        path = Path(row["path"])
        ds = _pydicom_reads(path)
        if ds is None:
            continue
        compared_files += 1
        for col in columns:
            try:
                expected = _expected(_pydicom_element(ds, col.path), col.multi)
            except (ValueError, TypeError):
                # pydicom cannot convert the stored value either: curate must report it as invalid.
                assert col.name in (row["invalid_attributes"] or []), (path.name, col.name)
                continue
            got = row[col.name]
            if expected is not None:
                compared_values += 1
            if not _same(got, expected) and (path.name, col.name) not in KNOWN_DIFFERENCES:
                mismatches.append(f"{path.name}: {col.name}: curate={got!r} pydicom={expected!r}")
    charset_files = sum(1 for r in rows if r["status"] == "ok" and "charset_files" in r["path"])
    assert charset_files >= 15, charset_files
    assert compared_files >= 120, compared_files
    assert compared_values >= 2000, compared_values
    assert not mismatches, "\n".join(mismatches[:60]) + f"\n({len(mismatches)} in all)"


@pytest.mark.parametrize("name", ["ExplVR_BigEnd.dcm", "MR_small_bigendian.dcm"])
def test_big_endian_values(name):
    from conftest import testdata

    path = testdata(name)
    row = curate.scan(path).to_pylist()[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert row["status"] == "ok", row["error"]
    assert row["transfer_syntax"] == "1.2.840.10008.1.2.2"
    assert row["Rows"] == ds.Rows and row["Columns"] == ds.Columns
    assert row["SOPInstanceUID"] == ds.SOPInstanceUID
