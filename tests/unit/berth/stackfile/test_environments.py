"""Environments: berth.ENV.toml laid over berth.toml (berth.stackfile.environments)."""

from __future__ import annotations

import pytest

from berth.stackfile.environments import merged, set_by_overlay
from berth.stackfile.load import load_stack
from planner.diagnostics import DiagnosticsError

BASE = """[stack]
name = "shop"

[apps.web]
image = "busybox:latest"
port = 8000
host_port = 28500
env = { MODE = "prod", LEVEL = "1" }
command = ["httpd", "-f"]

[apps.worker]
image = "busybox:latest"
port = 9000
"""


def test_tables_merge_key_by_key_and_other_values_replace():
    base = {"apps": {"web": {"env": {"A": "1", "B": "2"}, "command": ["a", "b"], "port": 1}}}
    over = {"apps": {"web": {"env": {"B": "3"}, "command": ["c"]}, "new": {"port": 2}}}
    assert merged(base, over) == {"apps": {"web": {"env": {"A": "1", "B": "3"}, "command": ["c"], "port": 1},
                                           "new": {"port": 2}}}
    assert set_by_overlay(base, over, ("apps", "web", "env", "B"))
    assert set_by_overlay(base, over, ("apps", "web", "command", 0))
    assert set_by_overlay(base, over, ("apps", "new", "port"))
    assert not set_by_overlay(base, over, ("apps", "web", "port"))
    assert not set_by_overlay(base, over, ("apps", "web"))


def test_an_environment_is_its_own_stack_with_the_overlay_over_the_base(tmp_path):
    (tmp_path / "berth.toml").write_text(BASE)
    (tmp_path / "berth.staging.toml").write_text('[apps.web]\nhost_port = 28501\nenv = { MODE = "staging" }\n')
    base, staging = load_stack(str(tmp_path)), load_stack(str(tmp_path), "staging")
    assert (base.name, base.environment) == ("shop", None)
    assert (staging.name, staging.environment) == ("shop-staging", "staging")
    web = staging.apps["web"]
    assert web.host_port == 28501 and web.env == {"MODE": "staging", "LEVEL": "1"}
    assert web.command == ("httpd", "-f") and list(staging.apps) == ["web", "worker"]


def test_an_overlay_that_names_its_stack_keeps_that_name(tmp_path):
    (tmp_path / "berth.toml").write_text(BASE)
    (tmp_path / "berth.qa.toml").write_text('[stack]\nname = "qa-shop"\n')
    assert load_stack(str(tmp_path), "qa").name == "qa-shop"


def test_a_problem_is_reported_in_the_file_and_line_that_set_it(tmp_path):
    (tmp_path / "berth.toml").write_text(BASE.replace("port = 9000", "port = 0"))
    (tmp_path / "berth.staging.toml").write_text('# staging\n\n[apps.web]\nhost_port = "x"\n')
    with pytest.raises(DiagnosticsError) as err:
        load_stack(str(tmp_path), "staging")
    found = {(d.file.rsplit("/", 1)[-1], d.line, d.key) for d in err.value.diagnostics}
    assert found == {("berth.staging.toml", 4, "apps.web.host_port"), ("berth.toml", 13, "apps.worker.port")}


def test_a_missing_environment_file_or_a_platform_file_is_a_clear_error(tmp_path):
    (tmp_path / "berth.toml").write_text(BASE)
    with pytest.raises(DiagnosticsError, match="environment prod: no berth.prod.toml beside berth.toml"):
        load_stack(str(tmp_path), "prod")
    with pytest.raises(DiagnosticsError, match="environment name 'Prod!' must be lowercase"):
        load_stack(str(tmp_path), "Prod!")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cerebrium.toml").write_text('[cerebrium.deployment]\nname = "x"\n')
    with pytest.raises(DiagnosticsError, match="is not one: name it from a berth.toml app"):
        load_stack(str(tmp_path / "c"), "staging")
