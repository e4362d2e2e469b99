"""personalab: the shared code of *The Persona Problem*.

The pipeline, one module per step: ``registry`` (which models exist) -> ``models`` (pull and convert
embedded weights) -> ``serve`` (a vLLM server) -> ``client`` + ``cache`` (cached, concurrent generation)
-> ``judges`` (refusal or not) -> ``stats`` (rates with intervals) -> ``figures`` -> ``pipeline`` (papermill runs
that write results and figures for the chapters).
"""

__version__ = "0.1.0"
