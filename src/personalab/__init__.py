"""personalab: the shared code of *The Persona Problem*, one subpackage per pipeline layer.

``harness`` (registry, pull and convert, vLLM serving, cached client) -> ``prompts`` + ``attacks`` (what is asked)
-> ``judges`` (refusal or not) -> ``experiments`` (one module per experiment: conditions and analysis)
-> ``book`` (figures and the numbers chapters quote); on top, ``experiment`` (the ``Run`` a notebook uses),
``pipeline`` (papermill runs) and ``cli``. ``paths``, ``stats`` and ``outputs``
(atomic writes, staged publishing) are shared by every layer.
"""

__version__ = "0.1.0"
