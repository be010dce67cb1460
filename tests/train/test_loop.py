"""train/loop.py: checkpoint folders swapped in whole, and put back after a kill between the renames."""

from __future__ import annotations

import math
import os

import pytest

from photopoet.train.loop import recover, round_metric, swap_in


def _write(text: str):
    def write(d):
        (d / "state.json").write_text(text, encoding="utf-8")

    return write


def test_swap_in_replaces_the_folder_whole_and_leaves_no_temporary(tmp_path):
    final = tmp_path / "run" / "last"
    swap_in(final, _write("1"))
    swap_in(final, _write("2"))
    assert (final / "state.json").read_text() == "2"
    assert sorted(p.name for p in final.parent.iterdir()) == ["last"]


def test_a_failed_write_keeps_the_previous_folder(tmp_path):
    final = tmp_path / "last"
    swap_in(final, _write("1"))

    def broken(d):
        (d / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        swap_in(final, broken)
    assert (final / "state.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recover_puts_the_previous_folder_back_after_a_kill_between_the_renames(tmp_path):
    final = tmp_path / "best"
    swap_in(final, _write("1"))
    os.replace(final, tmp_path / ".best.old")  # killed after the first rename
    (tmp_path / ".best.tmp-abc").mkdir()  # and a half-written new folder
    recover(final)
    assert (final / "state.json").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    recover(final)  # nothing to do: unchanged
    assert (final / "state.json").read_text() == "1"


def test_round_metric_keeps_json_valid():
    assert round_metric(0.123456789) == 0.123457
    assert round_metric(math.nan) is None
    assert round_metric(3) == 3 and round_metric("x") == "x"
