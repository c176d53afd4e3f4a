"""The container keys (volumes, shm_size, ipc, ulimits, entrypoint, stop_timeout) as plain
data: AppConfig -> container attributes -> ContainerSpec -> docker-py arguments, and
what a change of one costs."""

from __future__ import annotations

from planner.attributes import CONTAINER, ChangeClass
from planner.desired import AppConfig, VolumeMount
from planner.resources import config_hash, container_attributes, container_spec
from providers.docker_spec import create_args, host_config_args
from state.address import Address

APP = AppConfig(name="llm", image="vllm", port=8000, host_port=8000)
FULL = APP.model_copy(update=dict(
    volumes=(VolumeMount(source="hf-cache", target="/root/.cache/huggingface"),
             VolumeMount(source="/srv/models", target="/models", read_only=True)),
    shm_size=16 * 2**30, ipc="host", ulimits={"stack": 67108864, "memlock": -1},
    entrypoint=("python3", "-m", "vllm.entrypoints.openai.api_server"), stop_timeout=60.5,
))


def attrs(app: AppConfig) -> dict:
    return container_attributes("demo", app, 0, "vllm")


def test_unset_keys_are_absent_so_recorded_containers_keep_their_hash() -> None:
    # A container recorded before these keys existed: exactly these attributes.
    recorded = {"name": "berth-demo-llm-0", "image": "vllm", "command": None, "env": {}, "port": 8000,
                "host_port": 8000, "restart": "unless-stopped", "cpus": None, "memory": None, "readiness": None,
                "liveness": None, "readiness_timeout": 600.0, "depends_on": []}
    assert attrs(APP) == recorded
    assert config_hash(attrs(APP)) == config_hash(recorded)


def test_set_keys_are_recorded_and_each_one_replaces() -> None:
    full = attrs(FULL)
    assert full["volumes"] == ["hf-cache:/root/.cache/huggingface", "/srv/models:/models:ro"]
    assert (full["shm_size"], full["ipc"], full["stop_timeout"]) == (16 * 2**30, "host", 60.5)
    assert full["ulimits"] == {"memlock": -1, "stack": 67108864}  # sorted: order in the file means nothing
    assert full["entrypoint"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    for key in ("volumes", "shm_size", "ipc", "ulimits", "entrypoint", "stop_timeout"):
        assert CONTAINER.fields[key].change is ChangeClass.REPLACE
        without = {k: v for k, v in full.items() if k != key}
        assert config_hash(without) != config_hash(full), key
        assert CONTAINER.changed(without, full, ChangeClass.REPLACE) == [key]


def test_spec_and_docker_arguments() -> None:
    from docker.types import Mount, Ulimit

    spec = container_spec("demo", Address.container("llm", 0, "local"), attrs(FULL))
    assert (spec.shm_size, spec.ipc_mode, spec.stop_timeout) == (16 * 2**30, "host", 61)  # whole seconds, up
    assert spec.entrypoint == ("python3", "-m", "vllm.entrypoints.openai.api_server")
    host = host_config_args(spec, lambda parts: "/never")
    assert host["shm_size"] == 16 * 2**30 and host["ipc_mode"] == "host"
    assert host["ulimits"] == [Ulimit(name="memlock", soft=-1, hard=-1),
                               Ulimit(name="stack", soft=67108864, hard=67108864)]
    assert host["mounts"] == [
        Mount(target="/root/.cache/huggingface", source="berth-demo-hf-cache", type="volume"),
        Mount(target="/models", source="/srv/models", type="bind", read_only=True),
    ]
    args = create_args(spec, host)
    assert args["entrypoint"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert args["stop_timeout"] == 61


def test_docker_defaults_when_unset() -> None:
    spec = container_spec("demo", Address.container("llm", 0, "local"), attrs(APP))
    host = host_config_args(spec, lambda parts: "/never")
    assert (host["shm_size"], host["ipc_mode"], host["ulimits"], host["mounts"]) == (None, None, None, None)
    args = create_args(spec, host)
    assert (args["entrypoint"], args["stop_timeout"]) == (None, 10)
