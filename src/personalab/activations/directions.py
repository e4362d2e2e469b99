"""The refusal direction's maths: difference of means, projection, separation by layer, cosine (numpy only).

Following Arditi et al. (2024): the direction at layer ``l`` is the mean activation on requests the model should
refuse minus the mean on their harmless twins, read at the last prompt position. Ablating it removes each
activation's component along the unit direction; adding it shifts activations by the (unnormalised) difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(acts: np.ndarray, name: str) -> np.ndarray:
    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 3 or len(acts) == 0:
        raise ValueError(f"{name} must be a non-empty (prompts, layers, hidden) array, got shape {acts.shape}")
    return acts


def diff_of_means(targets: np.ndarray, twins: np.ndarray) -> np.ndarray:
    """Per-layer difference of mean activations, targets minus twins: shape (layers, hidden)."""
    targets, twins = _check(targets, "targets"), _check(twins, "twins")
    if targets.shape[1:] != twins.shape[1:]:
        raise ValueError(f"targets {targets.shape[1:]} and twins {twins.shape[1:]} differ in layers or hidden size")
    return targets.mean(axis=0) - twins.mean(axis=0)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length one along its last axis (a zero vector is refused: it has no direction)."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("a zero vector has no direction")
    return v / norm


def project_out(h: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``h`` minus its component along ``direction`` (last axis): what directional ablation leaves."""
    r = unit(np.asarray(direction, dtype=np.float64))
    h = np.asarray(h, dtype=np.float64)
    return h - (h @ r)[..., None] * r


def projections(acts: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Scalar projection of each prompt's activation on each layer's unit direction: shape (prompts, layers)."""
    acts = _check(acts, "acts")
    return np.einsum("pld,ld->pl", acts, unit(np.asarray(directions, dtype=np.float64)))


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (the Mann-Whitney AUC)."""
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs at least one positive and one negative")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def separation_by_layer(train_t: np.ndarray, train_b: np.ndarray, test_t: np.ndarray, test_b: np.ndarray
                        ) -> np.ndarray:
    """AUC per layer of the direction fitted on (train targets, train twins), scored on the test prompts."""
    r = diff_of_means(train_t, train_b)
    pt, pb = projections(test_t, r), projections(test_b, r)
    return np.array([auc(pt[:, layer], pb[:, layer]) for layer in range(r.shape[0])])


def cross_fitted_separation(targets: np.ndarray, twins: np.ndarray, folds: int = 2, seed: int = 0) -> np.ndarray:
    """Per-layer AUC of the direction with each fold of pairs held out in turn (``targets[i]`` pairs with
    ``twins[i]``), averaged over folds: a choice of layer that never scores a direction on its own data."""
    targets, twins = _check(targets, "targets"), _check(twins, "twins")
    if len(targets) != len(twins):
        raise ValueError(f"{len(targets)} targets but {len(twins)} twins: they must come in pairs")
    if not 2 <= folds <= len(targets):
        raise ValueError(f"folds must be between 2 and the number of pairs ({len(targets)}), got {folds}")
    order = np.random.default_rng(seed).permutation(len(targets))
    scores = []
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        scores.append(separation_by_layer(targets[train], twins[train], targets[held], twins[held]))
    return np.mean(scores, axis=0)


def choose_layer(separation: Sequence[float], max_fraction: float = 0.8) -> int:
    """The layer of best separation among the first ``max_fraction`` of layers (the last ones are excluded, as in
    Arditi et al.: directions read just before the unembedding mostly encode the next token)."""
    sep = np.asarray(separation, dtype=float)
    if sep.ndim != 1 or len(sep) == 0:
        raise ValueError("separation must be a non-empty vector, one value per layer")
    allowed = max(1, int(np.floor(len(sep) * max_fraction)))
    return int(np.nanargmax(sep[:allowed]))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(unit(np.asarray(a, dtype=np.float64)) @ unit(np.asarray(b, dtype=np.float64)))
