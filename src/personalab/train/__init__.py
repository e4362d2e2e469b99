"""The training stage: build a mask from a base model (dev-split data, a named recipe, LoRA via TRL), merge it.

``pull(ID)`` trains a ``kind: trained`` registry entry when its artefact is missing (or pulls an embedded model);
``build_data(recipe, seed, answer)`` gives the checked examples of a recipe; ``RECIPES`` lists the recipes.
"""

from personalab.train.data import HELD_OUT_FAMILIES, TRAINED_FAMILIES, BaseAnswerer, Example, TrainError, TrainingData
from personalab.train.recipes import RECIPES, SCRIPTED_REFUSAL, build_data, get_recipe
from personalab.train.trainer import PRECISION, TrainConfig, artefact_key, pull

__all__ = [
    "HELD_OUT_FAMILIES", "PRECISION", "RECIPES", "SCRIPTED_REFUSAL", "TRAINED_FAMILIES", "BaseAnswerer", "Example",
    "TrainConfig", "TrainError", "TrainingData", "artefact_key", "build_data", "get_recipe", "pull",
]
