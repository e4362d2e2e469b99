"""Run bookkeeping without a server: generation time is the union of busy intervals, not first-to-last."""

from __future__ import annotations

from types import SimpleNamespace

from personalab.experiment import Run


def _gen(start: str, end: str, cached: bool) -> dict:
    return {"started_at": f"2026-01-01T{start}+00:00", "finished_at": f"2026-01-01T{end}+00:00",
            "completion_tokens": 2, "prompt_tokens": 3, "cached": cached}


def test_generation_time_merges_overlaps_and_skips_gaps_between_runs():
    log = [_gen("00:00:00", "00:00:10", True), _gen("00:00:05", "00:00:12", True), _gen("05:00:00", "05:00:03", False)]
    summary = Run._generation_summary(SimpleNamespace(generation_log=log))
    assert summary == {"n": 3, "from_cache": 2, "prompt_tokens": 9, "completion_tokens": 6, "generation_wall_s": 15.0}


def test_empty_run_has_zero_generation_time():
    assert Run._generation_summary(SimpleNamespace(generation_log=[]))["generation_wall_s"] == 0
