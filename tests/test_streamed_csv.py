"""A CSV streamed row by row: nothing at its path until it is closed, owner-only from
its first byte, and no file at all for a run with no rows."""

from __future__ import annotations

import csv
import os
import stat

from curate.files import StreamedCsv, is_partial


def test_rows_appear_at_the_path_only_when_closed_and_owner_only(tmp_path):
    old = os.umask(0)
    try:
        table = StreamedCsv(tmp_path / "errors.csv", ["row", "reason"])
        table.add([1, 'a, quoted "reason"'])
        (partial,) = tmp_path.iterdir()
        assert is_partial(partial) and not (tmp_path / "errors.csv").exists()
        assert stat.S_IMODE(partial.stat().st_mode) == 0o600
        table.add([2, "b"])
        assert table.close() == tmp_path / "errors.csv"
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir()] == ["errors.csv"]
    assert stat.S_IMODE((tmp_path / "errors.csv").stat().st_mode) == 0o600
    with open(tmp_path / "errors.csv", newline="") as f:
        assert list(csv.reader(f)) == [["row", "reason"], ["1", 'a, quoted "reason"'], ["2", "b"]]


def test_no_rows_write_nothing(tmp_path):
    table = StreamedCsv(tmp_path / "none.csv", ["row"])
    assert not table.started and table.close() is None
    assert list(tmp_path.iterdir()) == []
