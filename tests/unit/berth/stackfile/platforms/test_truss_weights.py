"""Truss `model_cache` and `weights` as berth's weights, as Truss documents them (truss
0.11's truss_config.ModelRepo: use_volume entries mounted at /app/model_cache/VOLUME_FOLDER;
weights: source and mount_location), read from configs shaped like Baseten's public
examples (truss-examples)."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from berth.stackfile.load import load_stack
from planner.desired import WeightsSource
from planner.sources import describe
from providers.types import Observation

SERVER = """
base_image:
  image: vllm/vllm-openai:v0.11.0
docker_server:
  start_command: sh -c "vllm serve /app/model_cache/qwen"
  readiness_endpoint: /health
  liveness_endpoint: /health
  predict_endpoint: /v1/chat/completions
  server_port: 8000
  no_build: true
model_name: qwen
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ACCESS_TOKEN", "x")
    return tmp_path


def load(tmp_path: Path, extra: str):
    (tmp_path / "config.yaml").write_text(SERVER + dedent(extra))
    stack = load_stack(str(tmp_path / "config.yaml"))
    [app] = stack.apps.values()
    return stack, app


def test_a_model_cache_volume_entry_is_fetched_and_mounted_where_baseten_mounts_it(tmp_path):
    _, app = load(tmp_path, """
        model_cache:
          - repo_id: Qwen/Qwen3-Next-80B-A3B-Instruct-FP8
            revision: c5f5f263bdd5cc134092897864e8905d8fe7b928
            use_volume: true
            volume_folder: qwen
            allow_patterns: ["*.json", "*.safetensors"]
            ignore_patterns: ["*.pth"]
        """)
    assert app.weights == (WeightsSource(
        source="hf://Qwen/Qwen3-Next-80B-A3B-Instruct-FP8@c5f5f263bdd5cc134092897864e8905d8fe7b928",
        mount="/app/model_cache/qwen", allow=("*.json", "*.safetensors"), ignore=("*.pth",)),)


def test_the_token_is_the_runtime_secret_when_the_truss_lists_it(tmp_path):
    _, app = load(tmp_path, """
        secrets:
          hf_access_token: null
        model_cache:
          - repo_id: meta-llama/Llama-3.1-8B-Instruct
            revision: main
            use_volume: true
            volume_folder: llama
        """)
    assert app.weights[0].secret == "hf_access_token" and "hf_access_token" in app.secrets


def test_weights_entries_map_source_mount_location_and_auth_secret(tmp_path):
    _, app = load(tmp_path, """
        weights:
          - source: "hf://Qwen/Qwen3.5-9B@ef3d031a90d340a92d71f83ec17d054e100ce713"
            mount_location: "/app/checkpoint/qwen3.5-9b"
            auth_secret_name: "hf_access_token"
            ignore_patterns: ["original/*"]
          - source: "hf://nvidia/NVIDIA-Nemotron-Parse-v1.2@main"
            mount_location: "/models/nemotron-parse"
            auth:
              auth_method: CUSTOM_SECRET
              auth_secret_name: hf_access_token
        """)
    assert [(w.source, w.mount, w.ignore, w.secret) for w in app.weights] == [
        ("hf://Qwen/Qwen3.5-9B@ef3d031a90d340a92d71f83ec17d054e100ce713", "/app/checkpoint/qwen3.5-9b",
         ("original/*",), "hf_access_token"),
        ("hf://nvidia/NVIDIA-Nemotron-Parse-v1.2@main", "/models/nemotron-parse", (), "hf_access_token"),
    ]
    assert "hf_access_token" in app.secrets


def test_what_berth_cannot_fetch_is_a_plan_note(tmp_path):
    stack, app = load(tmp_path, """
        model_cache:
          - repo_id: org/baked
            use_volume: false
          - repo_id: bucket/path
            kind: s3
            use_volume: true
            volume_folder: s3
        weights:
          - source: "s3://bucket/model"
            mount_location: "/models/s3"
        """)
    assert app.weights == ()
    _, warnings = describe(stack, {"local": Observation(host="local")})
    text = "\n".join(warnings + list(app.ignored))
    assert "use_volume is not true" in text and "Hugging Face repos only" in text and "s3://" in text
