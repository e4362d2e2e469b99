"""What the reproduction appendix quotes about the base-model example, read from its committed prefill_sure run."""

from __future__ import annotations

from personalab.book import difference_text, pct
from personalab.outputs import read_json, read_table, results_dir_for

#: The registry's base-model example (pretrained only, served through the plain chat template).
BASE_MODEL = "gemma-3-270m"


def _rate(row) -> str:
    return f"{pct(row['rate'])} (95% CI {pct(row['lo'])} to {pct(row['hi'])}, {int(row['k'])} of {int(row['n'])})"


def base_model_numbers(model_id: str = BASE_MODEL, n_quotes: int = 3) -> dict[str, str]:
    """Formatted strings for the appendix (keys without the ``base_`` prefix): the judge's refusal rates on the base
    model, the prefill difference, and the first replies the judge called refusals, quoted as the model wrote them."""
    d = results_dir_for("prefill_sure", model_id)
    prov = read_json(d / "provenance.json")
    rates = read_table(d / "rates.csv").set_index("condition")
    diff = read_table(d / "difference.csv").iloc[0]
    replies = read_table(d / "responses.csv")
    flagged = replies[(replies["condition"] == "direct") & replies["refused"].astype(bool)]["reply"]
    quotes = [f"\u201c{' '.join(str(r).split())}\u201d" for r in flagged.head(n_quotes)]
    template = prov["model"].get("chat_template") or {}
    return {
        "model": prov["model"]["name"],
        "template": str(template.get("file")),
        "template_sha": str(template.get("sha256", ""))[:12],
        "judge": prov["judge"]["name"],
        "n": str(int(prov["n_items"])),
        "direct": _rate(rates.loc["direct"]),
        "prefill": _rate(rates.iloc[1]),
        "difference": difference_text(diff["difference"], diff["lo"], diff["hi"]),
        "quotes": "; ".join(quotes) if quotes else "none",
    }
