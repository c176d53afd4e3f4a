"""Weights through berth's real pipeline against fake hosts: parsed from berth.toml, planned
as app.NAME.weights[I]@HOST, fetched (or copied) once into the host's cache before the
app's containers start, and mounted read-only; a source already in the cache costs nothing."""

from __future__ import annotations

import os

import pytest

from unit.deployment import Deployment, failures, pending
from unit.fake_provider import FakeHost
from planner.graph import Step, build_graph
from planner.plan import Action
from state.address import Address

LOCAL = """
[stack]
name = "w"

[apps.llm]
image = "busybox:latest"
port = 8080
env = { MODE = "{mode}" }

[[apps.llm.weights]]
source = "./model"
mount = "/models/tiny"
ignore = ["*.md"]
"""

HUB = """
[stack]
name = "w"

[secrets.hf_access_token]
env = "BERTH_TEST_HF_TOKEN"

[apps.llm]
image = "busybox:latest"
port = 8080
env = { MODE = "{mode}" }

[[apps.llm.weights]]
source = "hf://org/tiny@main"
mount = "/models/tiny"
allow = ["*.json", "*.gguf"]
secret = "hf_access_token"
"""

FILES = {"model/config.json": '{"hidden": 64}', "model/model.gguf": "weights", "model/README.md": "# no"}
W = "app.llm.weights[0]@local"
C = "app.llm.container[0]@local"


def deployment(tmp_path, text: str, mode: str = "a", **kw) -> Deployment:
    images = {"busybox:latest": {}}
    return Deployment(tmp_path, text.replace("{mode}", mode), files=FILES,
                      hosts={"local": FakeHost("local", images=images)}, **kw)


def actions(plan) -> dict[str, Action]:
    return {str(c.address): c.action for c in plan.changes}


def test_a_weights_table_is_parsed_into_the_app(tmp_path):
    d = deployment(tmp_path, HUB)
    app = d.session().stack.apps["llm"]
    (w,) = app.weights
    assert (w.source, w.mount, w.allow, w.ignore, w.secret, w.kind) == (
        "hf://org/tiny@main", "/models/tiny", ("*.gguf", "*.json"), (), "hf_access_token", "hf")
    assert "hf_access_token" in app.secrets  # its file on the host is what the fetcher reads
    local = deployment(tmp_path / "l", LOCAL).session().stack.apps["llm"].weights[0]
    assert local.kind == "dir" and local.source == str((tmp_path / "l" / "model").resolve())


def test_a_local_directory_is_copied_once_and_mounted_read_only(tmp_path):
    d = deployment(tmp_path, LOCAL)
    plan = d.plan()
    assert actions(plan)[W] is Action.CREATE, pending(plan)
    result = d.apply()
    assert not failures(result)
    assert d.local.ops("put_weights") == [str((tmp_path / "model").resolve())]
    (key,) = d.local.weights
    spec = d.local.container_at(C).spec
    (mount,) = spec.host_mounts
    assert (mount.source, mount.target, mount.read_only) == (
        f"/fake/local/weights/entries/{key}/files", "/models/tiny", True)
    assert d.state.resources[W].id == key
    again = d.plan()
    assert not again.has_changes, pending(again)
    assert W not in {str(c.address) for c in again.actions}  # no step: the entry is there
    d.apply()
    assert len(d.local.ops("put_weights")) == 1


def test_the_ignored_file_changes_nothing_and_a_changed_file_is_a_new_entry(tmp_path):
    d = deployment(tmp_path, LOCAL)
    d.apply()
    d.write(files={"model/README.md": "# edited"})
    assert not d.plan().has_changes  # ignored by the patterns
    d.write(files={"model/model.gguf": "new weights"})
    plan = d.plan()
    assert actions(plan)[W] is Action.CREATE and actions(plan)[C] is Action.REPLACE, pending(plan)
    replaced = next(c for c in plan.changes if str(c.address) == C)
    assert "weights" in replaced.forces_replacement
    old = set(d.local.weights)
    assert not failures(d.apply())
    assert old < set(d.local.weights)  # beside the old one: never deleted


def test_an_entry_already_on_the_host_costs_no_step_even_for_another_stack(tmp_path):
    first = deployment(tmp_path / "a", LOCAL)
    first.apply()
    # another stack on the same host (on a port of its own: the first one's is taken)
    other = Deployment(tmp_path / "b", LOCAL.replace('name = "w"', 'name = "w2"').replace("{mode}", "a")
                       .replace("port = 8080", "port = 8080\nhost_port = 8081"),
                       files=FILES, hosts={"local": first.local})
    plan = other.plan()
    assert actions(plan)["app.llm.weights[0]@local"] is Action.NOOP, pending(plan)


def test_an_env_change_replaces_the_container_with_no_weights_step(tmp_path):
    d = deployment(tmp_path, LOCAL)
    d.apply()
    d.write(LOCAL.replace("{mode}", "b"))
    plan = d.plan()
    assert actions(plan)[C] is Action.REPLACE and actions(plan)[W] is Action.NOOP, pending(plan)
    assert not failures(d.apply())
    assert len(d.local.ops("put_weights")) == 1
    assert d.local.container_at(C).spec.host_mounts  # the new replica mounts the same entry


def test_a_hub_source_is_fetched_on_the_host_with_its_token_then_costs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_TEST_HF_TOKEN", "hf_tok")
    d = deployment(tmp_path, HUB)
    plan = d.plan()
    weights = next(c for c in plan.changes if str(c.address) == W)
    assert weights.action is Action.CREATE and weights.after["key"] is None  # resolved on the host
    result = d.apply()
    assert not failures(result)
    assert d.local.ops("fetch_weights") == ["hf://org/tiny@main"]
    (key,) = d.local.weights
    assert d.state.resources[W].id == key
    assert d.state.resources[C].attributes["weights"] == [{"mount": "/models/tiny", "key": key}]
    assert d.local.container_at(C).spec.host_mounts[0].source.endswith(f"/entries/{key}/files")
    again = d.plan()
    assert not again.has_changes, pending(again)
    d.write(HUB.replace("{mode}", "b"))
    plan = d.plan()
    assert actions(plan)[C] is Action.REPLACE and actions(plan)[W] is Action.NOOP, pending(plan)
    assert not failures(d.apply())
    assert d.local.ops("fetch_weights") == ["hf://org/tiny@main"]


def test_weights_gone_from_the_host_are_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_TEST_HF_TOKEN", "hf_tok")
    d = deployment(tmp_path, HUB)
    d.apply()
    d.local.weights.clear()  # the cache was emptied behind berth's back
    d.local.revisions["hf://org/tiny@main"] = "r2"  # and main moved on since
    plan = d.plan()
    assert actions(plan)[W] is Action.CREATE, pending(plan)
    assert not failures(d.apply())
    (key,) = d.local.weights
    assert d.state.resources[W].id == key
    assert d.local.container_at(C).spec.host_mounts[0].source.endswith(f"/entries/{key}/files")
    assert not d.plan().has_changes


def _change(address: str, action: Action, after: dict | None = None, before: dict | None = None, ids=()):
    from planner.plan import Change

    return Change(address=address, type=Address.parse(address).kind, action=action, after=after, before=before,
                  ids=list(ids))


CONTAINER = {"name": "berth-w-llm-0", "image": "busybox", "command": None, "env": {}, "port": 80,
             "host_port": 80, "restart": "no", "cpus": None, "memory": None, "readiness": None,
             "liveness": None, "readiness_timeout": 5, "depends_on": []}
WEIGHTS = {"source": "/m", "kind": "dir", "mount": "/models", "allow": [], "ignore": [], "secret": None, "key": "k"}


def test_the_weights_step_runs_before_the_container_starts():
    graph = build_graph_of(_change(W, Action.CREATE, WEIGHTS), _change(C, Action.CREATE, CONTAINER))
    assert graph.has_edge(Step("fetch-weights", W), Step("create", C))


def test_the_weights_step_runs_before_a_replace_stops_the_old_replica():
    graph = build_graph_of(_change(W, Action.CREATE, WEIGHTS),
                           _change(C, Action.REPLACE, CONTAINER | {"host_port": None}, CONTAINER, ids=["old"]))
    # the replace's create step stops the old container once the new one exists
    assert graph.has_edge(Step("fetch-weights", W), Step("create", C))


def test_the_weights_step_runs_before_a_rolling_replace_starts_beside_the_old_one():
    graph = build_graph_of(_change(W, Action.CREATE, WEIGHTS),
                           _change(C, Action.CREATE_THEN_DELETE, CONTAINER | {"host_port": None}, CONTAINER,
                                   ids=["old"]))
    assert graph.has_edge(Step("fetch-weights", W), Step("roll-start", C))
    import networkx as nx

    assert nx.has_path(graph, Step("fetch-weights", W), Step("roll-switch", C))


def test_a_fetch_with_a_token_waits_for_its_secret_file():
    secret = "app.llm.secret.hf_access_token@local"
    graph = build_graph_of(_change(W, Action.CREATE, WEIGHTS | {"secret": "hf_access_token", "kind": "hf"}),
                           _change(secret, Action.CREATE, {"name": "hf_access_token", "value": "x"}),
                           _change(C, Action.CREATE, CONTAINER))
    assert graph.has_edge(Step("sync-secret", secret), Step("fetch-weights", W))


def build_graph_of(*changes):
    from planner.plan import Plan

    return build_graph(Plan(stack="w", changes=list(changes)))


def test_the_live_view_has_words_for_every_step_kind():
    from berth.ui.apply_view import VERBS
    from planner.graph import StepKind

    assert set(VERBS) == {kind.value for kind in StepKind}


def test_targeting_a_container_brings_its_weights(tmp_path):
    from planner.targeting import select

    d = deployment(tmp_path, LOCAL)
    plan = select(d.plan(), ["app.llm.container[0]"])
    assert {str(c.address) for c in plan.changes} >= {W, C, "app.llm.image@local"}, pending(plan)


def test_a_mount_whose_key_its_fetch_resolves_shows_as_known_after_apply():
    from berth.ui.plan_view import value_text

    assert "(known after apply)" in value_text([{"mount": "/m", "key": None}], "weights")
    assert "abc" in value_text([{"mount": "/m", "key": "abc"}], "weights")


def test_two_apps_of_one_directory_share_one_entry(tmp_path):
    two = LOCAL + LOCAL.split("[stack]\nname = \"w\"\n")[1].replace("apps.llm", "apps.llm2").replace("8080", "8081")
    d = deployment(tmp_path, two)
    assert not failures(d.apply())
    assert len(d.local.weights) == 1
    mounts = {c.spec.host_mounts[0].source for c in d.local.containers.values()}
    assert len(mounts) == 1
