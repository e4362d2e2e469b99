"""The wisdom handicap: what deeper alignment costs, and what a market does with that cost.

The essay claims that performing alignment is cheaper than being aligned, so competition favours the mask. The
``wisdom_handicap`` experiment turns that into measurements on one served model: :mod:`.strategies` defines the
strategies (:data:`STRATEGIES`) and asks the model through a ``Run``, :mod:`.costs` measures what each one buys
in robustness and costs in tokens, and :mod:`.market` feeds those numbers to an illustrative replicator market
model. The names a notebook uses are re-exported here (``from personalab.experiments import handicap as hc``).
"""

from personalab.experiments.handicap.costs import (family_robustness, handicap_curve, lookalike_reference,
                                                   money_per_1k, pareto_mask, robustness_gains, summary)
from personalab.experiments.handicap.market import (MARKET_ASSUMPTIONS, MarketParams, final_shares, fitness,
                                                    market_inputs, robust_strategy, sensitivity, simulate_market,
                                                    threshold_p)
from personalab.experiments.handicap.strategies import (DEFAULT_WRAPPERS, DIRECT, EXPERIMENT, RULES_PERSONA,
                                                        STRATEGIES, VALUES_PERSONA, Case, Strategy,
                                                        answer_with_notes, build_cases, critique_request,
                                                        majority_label, reasoning_request, revision_request,
                                                        run_all, run_strategy, select_majority, transcript,
                                                        with_system)

__all__ = [
    "Case", "DEFAULT_WRAPPERS", "DIRECT", "EXPERIMENT", "MARKET_ASSUMPTIONS", "MarketParams", "RULES_PERSONA",
    "STRATEGIES", "Strategy", "VALUES_PERSONA", "answer_with_notes", "build_cases", "critique_request",
    "family_robustness", "final_shares", "fitness", "handicap_curve", "lookalike_reference", "majority_label",
    "market_inputs", "money_per_1k", "pareto_mask", "reasoning_request", "revision_request", "robust_strategy",
    "robustness_gains", "run_all", "run_strategy", "select_majority", "sensitivity", "simulate_market", "summary",
    "threshold_p", "transcript", "with_system",
]
