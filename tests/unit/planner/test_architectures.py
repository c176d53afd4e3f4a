"""An image this machine builds for an SSH host of another CPU architecture is refused at
plan time, naming the app's key and what to do (build_on = "host"); the same for the
gateway, whose image is always built here. Hosts that match, or whose architecture is
unknown, pass; so do apps built on their host."""

from __future__ import annotations

import pytest

from planner.desired import AppConfig, BuildSource
from planner.diagnostics import DiagnosticsError
from planner.placement import check_architectures


def app(name: str, host: str, on_host: bool = False) -> AppConfig:
    return AppConfig(name=name, build=BuildSource(context="/ctx", on_host=on_host), port=8000, host_port=None, host=host,
                     origin="berth.toml")


def test_an_image_built_here_for_an_arm64_host_is_refused_with_what_to_do() -> None:
    with pytest.raises(DiagnosticsError) as caught:
        check_architectures([app("llm", "gh200"), app("web", "box")], {"gh200": "arm64", "box": "amd64"}, "amd64")
    [problem] = caught.value.diagnostics
    assert problem.key == "apps.llm.build" and problem.file == "berth.toml"
    assert "built on this machine (amd64) for host gh200, whose engine runs arm64" in problem.summary
    assert 'build_on = "host" in [hosts.gh200]' in problem.detail


def test_the_gateway_for_an_arm64_host_is_refused_at_its_key() -> None:
    with pytest.raises(DiagnosticsError) as caught:
        check_architectures([], {"gh200": "arm64"}, "amd64", {"gh200"}, "gateway.port", "berth.toml")
    [problem] = caught.value.diagnostics
    assert (problem.key, problem.file) == ("gateway.port", "berth.toml")
    assert "gateway on host gh200" in problem.summary


def test_matching_or_unknown_architectures_pass() -> None:
    check_architectures([app("llm", "box")], {"box": "amd64"}, "amd64", {"box"})
    check_architectures([app("llm", "gh200")], {"gh200": None}, "amd64")
    check_architectures([app("llm", "gh200")], {"gh200": "arm64"}, None)
