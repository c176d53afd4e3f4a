"""build.secrets, build.target and build.cache_from: read from berth.toml, counted in the
content hash (names, never values), and handed to the build step; a stack without them
hashes and plans as before."""

from __future__ import annotations

import secrets
from pathlib import Path

from planner.contexthash import context_hash
from planner.desired import BuildSource
from unit.deployment import Deployment

STACK = """
[stack]
name = "demo"
[secrets.hf_access_token]
file = "token.txt"
[apps.web]
build = {{ context = "./web"{extra} }}
port = 8000
"""
EXTRA = ', secrets = ["hf_access_token"], target = "runtime", cache_from = ["demo/web:cache"]'


def _files(token: str) -> dict[str, str]:
    return {"web/Dockerfile": "FROM busybox\n", "token.txt": token}


def test_the_build_step_gets_the_secret_values_target_and_cache_from(tmp_path: Path) -> None:
    token = "t-" + secrets.token_hex(12)
    d = Deployment(tmp_path, STACK.format(extra=EXTRA), files=_files(token))
    result = d.apply()
    assert result.ok
    [(tag, options)] = d.local.build_options.items()
    assert options.secrets == {"hf_access_token": token.encode()}
    assert options.target == "runtime" and options.cache_from == ("demo/web:cache",)
    assert options.name == "web"
    image = next(r for r in result.state.resources.values() if r.address.kind == "image")
    assert image.attributes["build_secrets"] == ["hf_access_token"]
    assert token not in result.state.model_dump_json()
    assert not d.plan().has_changes


def test_a_rotated_build_secret_value_does_not_rebuild(tmp_path: Path) -> None:
    d = Deployment(tmp_path, STACK.format(extra=EXTRA), files=_files("one-" + secrets.token_hex(8)))
    assert d.apply().ok
    d.write(files={"token.txt": "two-" + secrets.token_hex(8)})
    assert not d.plan().has_changes


def test_the_options_count_in_the_content_hash_only_when_set(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\n")
    plain = BuildSource(context=str(tmp_path))
    # Empty options are no options: a stack written before they existed keeps its hash.
    assert context_hash(plain) == context_hash(BuildSource(context=str(tmp_path), secrets=(), cache_from=()))
    hashes = {context_hash(BuildSource(context=str(tmp_path), **option))
              for option in ({"target": "a"}, {"target": "b"}, {"secrets": ("x",)}, {"cache_from": ("r:1",)})}
    assert len(hashes) == 4 and context_hash(plain) not in hashes


def test_a_stack_without_the_options_records_no_new_attributes(tmp_path: Path) -> None:
    d = Deployment(tmp_path, STACK.format(extra=""), files=_files("x"))
    result = d.apply()
    image = next(r for r in result.state.resources.values() if r.address.kind == "image")
    assert not {"build_secrets", "target", "cache_from"} & set(image.attributes)


# -- build_on --------------------------------------------------------------------------

ON_HOST = """
[stack]
name = "demo"
[hosts.gpu-a]
ssh = "root@10.0.0.5"
{host_default}
[apps.web]
build = "./web"
host = "gpu-a"
port = 8000
{app_key}
"""


def _on_host(tmp_path: Path, host_default: str = "", app_key: str = "") -> Deployment:
    from unit.fake_provider import FakeHost

    return Deployment(tmp_path, ON_HOST.format(host_default=host_default, app_key=app_key),
                      files={"web/Dockerfile": "FROM busybox\n"},
                      hosts={"local": FakeHost("local"), "gpu-a": FakeHost("gpu-a")})


def _steps(d: Deployment) -> list[str]:
    from planner.graph import build_graph

    return sorted(f"{step.kind.value} {step.address}" for step in build_graph(d.plan()).nodes)


def test_build_on_host_builds_there_and_sends_nothing(tmp_path: Path) -> None:
    d = _on_host(tmp_path, app_key='build_on = "host"')
    assert [s for s in _steps(d) if "image" in s] == ["build app.web.image@gpu-a"]  # no deliver
    result = d.apply()
    assert result.ok
    assert d.local.images == {} and len(d.hosts["gpu-a"].images) == 1
    assert ("build", next(iter(d.hosts["gpu-a"].build_options))) in d.hosts["gpu-a"].log
    assert not d.plan().has_changes


def test_a_hosts_build_on_is_its_apps_default_and_an_apps_own_wins(tmp_path: Path) -> None:
    d = _on_host(tmp_path, host_default='build_on = "host"')
    assert [s for s in _steps(d) if "image" in s] == ["build app.web.image@gpu-a"]
    d = _on_host(tmp_path / "2", host_default='build_on = "host"', app_key='build_on = "local"')
    assert [s for s in _steps(d) if "image" in s] == ["build app.web.image@gpu-a", "deliver app.web.image@gpu-a"]


def test_build_on_local_is_todays_build_here_then_send(tmp_path: Path) -> None:
    d = _on_host(tmp_path)
    assert [s for s in _steps(d) if "image" in s] == ["build app.web.image@gpu-a", "deliver app.web.image@gpu-a"]
    assert d.apply().ok
    assert len(d.local.images) == 1  # the local copy is kept as the next transfer's source


def test_a_wrong_build_on_or_target_is_named_at_its_key(tmp_path: Path) -> None:
    import pytest

    from berth.stackfile.load import load_stack
    from planner.diagnostics import DiagnosticsError

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Dockerfile").write_text("FROM busybox\n")
    (tmp_path / "berth.toml").write_text(
        '[apps.web]\nbuild = { context = "./web", target = "no stage!" }\nport = 8000\nbuild_on = "remote"\n')
    with pytest.raises(DiagnosticsError) as caught:
        load_stack(str(tmp_path / "berth.toml"))
    found = {d.key: d.summary for d in caught.value.diagnostics}
    assert 'one of "local"' in found["apps.web.build_on"] and '"host"' in found["apps.web.build_on"]
    assert "build stage name" in found["apps.web.build.target"]
    assert all(d.line for d in caught.value.diagnostics)


def test_build_secrets_without_buildkit_are_refused_not_dropped() -> None:
    import pytest

    from providers.buildkit import without_buildkit
    from providers.types import BuildOptions, ProviderError

    without_buildkit(BuildOptions(), "local")  # nothing asked that the legacy builder lacks
    with pytest.raises(ProviderError, match="build.secrets needs BuildKit; install Debian's docker.io") as caught:
        without_buildkit(BuildOptions(secrets={"tok": b"s3cr3t-value"}), "gpu-a")
    assert "s3cr3t-value" not in str(caught.value)


def test_a_gpu_app_placed_on_a_host_builds_there_by_its_own_or_the_hosts_build_on(tmp_path: Path) -> None:
    from providers.gpus import Gpu
    from unit.fake_provider import FakeHost

    for n, (host_default, app_key) in enumerate([("", 'build_on = "host"'), ('build_on = "host"', "")]):
        toml = ON_HOST.format(host_default=host_default, app_key=app_key + "\ngpus = 1").replace('host = "gpu-a"\n', "")
        gpu = FakeHost("gpu-a")
        gpu.gpu_list = (Gpu(index="0", name="NVIDIA L4", memory_mib=23034, uuid="GPU-0"),)
        d = Deployment(tmp_path / str(n), toml, files={"web/Dockerfile": "FROM busybox\n"},
                       hosts={"local": FakeHost("local"), "gpu-a": gpu})
        assert [s for s in _steps(d) if "image" in s] == ["build app.web.image@gpu-a"], (host_default, app_key)
        assert d.apply().ok
        assert d.local.images == {}
