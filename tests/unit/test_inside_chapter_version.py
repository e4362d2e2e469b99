"""The inside chapter says whether its persona-axis and probe numbers were measured on the current masks, and reads
its ablation results by their intervals."""

from __future__ import annotations

import pandas as pd

from personalab.book.chapters import inside


def _fake_read_json(dates: dict[str, str], run_date: str):
    def read_json(path):
        path = str(path)
        for model, date in dates.items():
            if f"slippage/{model}/" in path:
                return {"model": {"training": {"date": date}}}
        return {"date": run_date, "parameters": {"masks": list(dates)}}
    return read_json


def test_a_run_older_than_the_masks_says_so(monkeypatch):
    monkeypatch.setattr(inside, "read_json", _fake_read_json({"m-a": "2026-12-06T10:00:00", "m-b": "2026-12-05"},
                                                             "2026-12-04T21:00:00"))
    note = inside.masks_version_note("persona_axis", "base")
    assert "2026-12-04" in note and "retrained on 2026-12-06" in note


def test_a_run_after_the_masks_reads_the_current_ones(monkeypatch):
    monkeypatch.setattr(inside, "read_json", _fake_read_json({"m-a": "2026-12-06T10:00:00"}, "2026-12-06T12:00:00"))
    assert inside.masks_version_note("probe", "base").startswith("These numbers were measured on the masks")


def test_the_probe_verdict_names_the_models_where_the_hypothesis_holds(monkeypatch):
    import pandas as pd

    diffs = pd.DataFrame({"model": ["base", "m-shallow", "m-deep"], "difference": [0.0, 0.1, 0.02],
                          "lo": [-0.2, 0.02, -0.07], "hi": [0.2, 0.2, 0.1]})
    aucs = pd.DataFrame({"model": ["base"], "score": ["words"], "auc": [0.5], "lo": [0.4], "hi": [0.6],
                         "n_rows": [700], "n_items": [100], "n_families": [7]})
    monkeypatch.setattr(inside, "read_table", lambda path: diffs if "difference" in str(path) else aucs)
    monkeypatch.setattr(inside, "masks_version_note", lambda *a: "")
    out = inside.probe_numbers("base")
    assert out["probe_n_above"] == "1" and out["probe_n_items"] == "100"
    assert out["probe_verdict"].startswith("So the hypothesis holds in the shallow mask and not in the base model "
                                           "and the deep mask:")
    monkeypatch.setattr(inside, "read_table", lambda path: diffs.assign(lo=-0.1) if "difference" in str(path) else aucs)
    assert inside.probe_numbers("base")["probe_verdict"].startswith("So the hypothesis is not supported")


def test_the_ablation_reading_follows_the_intervals() -> None:
    def row(lo: float, hi: float) -> pd.Series:
        return pd.Series({"difference": (lo + hi) / 2, "lo": lo, "hi": hi})

    assert inside.damage_reading(row(-0.65, -0.05), row(-0.35, 0.25)) == "again a damaged model, not an unmasked one"
    assert inside.damage_reading(row(-0.65, 0.0), row(-0.35, 0.25)).endswith("neither clearly unmasked nor clearly damaged")
    assert "unmasked model is not ruled out" in inside.damage_reading(row(-0.65, 0.0), row(-0.8, -0.3))
