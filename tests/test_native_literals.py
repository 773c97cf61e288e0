"""curate._native.Literals: many byte literals found in one pass (Aho-Corasick)."""

from __future__ import annotations

import pytest

from curate._native import Literals


def test_every_place_a_literal_occurs_overlapping_ones_too():
    literals = Literals([b"abc", b"bcd", b"cd"])
    assert len(literals) == 3
    assert literals.find_all(b"xxabcdx") == [(2, 0), (3, 1), (4, 2)]
    assert literals.find_all(b"abcabcabc", limit=2) == [(0, 0), (3, 0)]
    assert literals.occurs_in(b"--cd--") and not literals.occurs_in(b"ab-c-d")


def test_ascii_case_only_where_asked_and_other_bytes_as_they_are():
    name = "иван".encode("cp1251")
    insensitive = Literals([b"zyxw", name], ascii_case_insensitive=True)
    assert insensitive.find_all(b"..ZyXw..") == [(2, 0)]
    assert insensitive.find_all("ИВАН".encode("cp1251")) == []  # not an ASCII letter: no case folded
    assert insensitive.find_all(b"\0" + name) == [(1, 1)]
    assert Literals([b"zyxw"]).find_all(b"ZYXW") == []


def test_an_empty_literal_is_refused():
    with pytest.raises(ValueError, match="empty literal"):
        Literals([b"abc", b""])
