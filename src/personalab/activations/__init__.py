"""The activations stage: open a served checkpoint with transformers, read its residual stream, steer it.

``load(ID)`` opens a local model (the weights vLLM serves); ``last_position`` reads every block's output at the last
prompt token (cached); ``directions`` holds the refusal direction's maths (difference of means, projection, layer
choice, cosine); ``generate`` answers greedily with an :class:`Intervention` (a direction ablated, added or capped) in
place, and ``seconds_per_token`` times it.
"""

from personalab.activations.collect import last_position
from personalab.activations.directions import (auc, choose_layer, cosine, cross_fitted_separation, diff_of_means,
                                               project_out, projections, separation_by_layer, unit)
from personalab.activations.model import ActivationsError, LocalModel, check_local, load
from personalab.activations.steer import Intervention, capped, generate, seconds_per_token, steering

__all__ = [
    "ActivationsError", "Intervention", "LocalModel", "auc", "capped", "check_local", "choose_layer", "cosine",
    "cross_fitted_separation", "diff_of_means", "generate", "last_position", "load", "project_out", "projections",
    "seconds_per_token", "separation_by_layer", "steering", "unit",
]
