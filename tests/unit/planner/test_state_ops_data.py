"""The pure parts of issue 6 as data: targeting, --replace, refresh=false, drift, import,
recorded configurations, history and saved-plan checks. No Docker."""

from __future__ import annotations

import json

import pytest

from planner.desired import Stack
from planner.diff import diff
from planner.drift import drift
from planner.importing import attributes_from_inspect
from planner.plan import Action
from planner.recorded import record_digest, recorded_config, stack_from_record
from planner.refresh import observe_from_state
from planner.savedplan import SavedPlan, SavedPlanError
from planner.targeting import force_replace, select
from state.address import AddressError, moves
from state.history import config_at, latest_config_digest, previous_config, versions
from state.model import State
from unit.planner.test_diff import STACK, applied, configs, digests_for, hashes_for, load_cases, plan_for, sources_for

WORLD = {
    "model": {"build": "/srv/model", "host_port": 8000},
    "web": {"build": "/srv/web", "host_port": 9000, "depends_on": ["model"]},
    "other": {"image": "busybox:latest", "host_port": 7000},
}


def actions(plan) -> dict[str, str]:
    return {c.address: c.action.word for c in plan.changes}


# -- --target ----------------------------------------------------------------------------


def test_target_brings_the_image_and_the_apps_depended_on() -> None:
    plan = select(plan_for({"apps": WORLD}), ["app.web"])
    assert set(actions(plan)) == {"app.web.image@local", "app.web.container[0]@local",
                                  "app.model.image@local", "app.model.container[0]@local"}
    assert plan.warnings[0].startswith("Resource targeting is in effect")


def test_target_of_a_dependency_does_not_bring_its_dependents() -> None:
    plan = select(plan_for({"apps": WORLD}), ["app.model.container[0]@local"])
    assert set(actions(plan)) == {"app.model.image@local", "app.model.container[0]@local"}


def test_target_on_destroy_brings_dependents_which_go_first() -> None:
    plan = select(plan_for({"world": WORLD, "destroy": True}), ["app.model"])
    deleted = {a for a, w in actions(plan).items() if w == "delete"}
    assert "app.web.container[0]@local" in deleted and "app.model.container[0]@local" in deleted
    assert "app.other.container[0]@local" not in actions(plan)


def test_target_with_a_host_selects_only_that_host() -> None:
    plan = select(plan_for({"apps": WORLD}), ["app.other@gpu1"])
    assert plan.changes == []
    assert any("matches no resource" in w for w in plan.warnings)


def test_target_text_is_checked() -> None:
    with pytest.raises(AddressError):
        select(plan_for({"apps": WORLD}), ["web"])


def test_untargeted_changes_are_left_out_not_recorded_as_no_ops() -> None:
    plan = select(plan_for({"world": WORLD, "change": {"other": {"env": {"A": "1"}}}}), ["app.web"])
    assert "app.other.container[0]@local" not in actions(plan)


# -- --replace ---------------------------------------------------------------------------


def test_replace_turns_a_no_op_into_a_replacement() -> None:
    plan = force_replace(plan_for({"world": WORLD}), ["app.web.container[0]@local"])
    change = next(c for c in plan.changes if c.address == "app.web.container[0]@local")
    assert change.action is Action.REPLACE and change.ids == ["ctr-web-0"]
    assert "replacement requested with --replace" in change.reasons
    assert plan.summary() == {"add": 1, "change": 0, "destroy": 1}


@pytest.mark.parametrize("address,message", [
    ("app.web.image@local", "only containers"),
    ("app.nope.container[0]@local", "no such container"),
    ("app.web.container[3]@local", "no such container"),
])
def test_replace_refuses_what_it_cannot_replace(address: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        force_replace(plan_for({"world": WORLD}), [address])


# -- --refresh=false ---------------------------------------------------------------------


@pytest.mark.parametrize("case", [p for p in load_cases() if not p.marks and "world" in p.values[0]])
def test_a_host_as_state_records_it_plans_no_changes(case) -> None:
    """observe_from_state must agree with what apply leaves: every applied world, planned
    from state alone with the same apps, is a no-op."""
    apps = configs(case["world"])
    hashes = hashes_for(apps, case.get("world_content", {}))
    digests = digests_for(apps, case.get("world_secret_values", {}))
    world = applied(apps, hashes, {"local"}, digests)
    state = world.state()
    hosts = {"local"} | {a.host for a in apps.values()}
    stack = Stack(name=STACK, file="/project/berth.toml", apps=apps, secrets=sources_for(apps, {}))
    plan = diff(stack, state, observe_from_state(state, STACK, hosts), hashes, secret_digests=digests)
    assert not plan.has_changes, [(c.address, c.action.word, c.reasons) for c in plan.actions]


def test_refresh_false_plans_from_state_even_when_the_host_lost_things() -> None:
    apps = configs(WORLD)
    hashes = hashes_for(apps, {})
    state = applied(apps, hashes, {"local"}).state()
    changed = configs({**WORLD, "other": {**WORLD["other"], "env": {"A": "1"}}})
    stack = Stack(name=STACK, file="/p/berth.toml", apps=changed)
    plan = diff(stack, state, observe_from_state(state, STACK, {"local"}), hashes)
    assert actions(plan)["app.other.container[0]@local"] == "replace"


# -- refresh (drift) ---------------------------------------------------------------------


def test_drift_forgets_what_is_gone_and_notes_the_rest() -> None:
    apps = configs(WORLD)
    world = applied(apps, hashes_for(apps, {}), {"local"})
    world.containers["local"] = [c for c in world.containers["local"] if c["id"] != "ctr-web-0"]
    world.containers["local"][0]["state"] = "exited"
    state = world.state()
    refreshed, findings = drift(state, world.observed())
    assert "app.web.container[0]@local" not in refreshed.resources
    assert len(refreshed.resources) == len(state.resources) - 1
    written = [f for f in findings if f.writes]
    assert [f.address for f in written] == ["app.web.container[0]@local"]
    assert any("exited" in f.message and not f.writes for f in findings)


def test_no_drift_when_the_hosts_match() -> None:
    apps = configs(WORLD)
    world = applied(apps, hashes_for(apps, {}), {"local"})
    refreshed, findings = drift(world.state(), world.observed())
    assert refreshed == world.state() and findings == []


# -- import ------------------------------------------------------------------------------

DESIRED = {"name": "berth-demo-files-0", "image": "busybox:latest", "command": None, "env": {"A": "1"},
           "port": 8000, "host_port": 18000, "restart": "unless-stopped", "cpus": None, "memory": None,
           "readiness": "/", "liveness": None, "readiness_timeout": 600.0, "depends_on": []}
INSPECT = {
    "Id": "abc", "Name": "/by-hand", "Image": "sha256:1",
    "Config": {"Image": "busybox", "Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"]},
    "ImageConfig": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
    "HostConfig": {"PortBindings": {"8000/tcp": [{"HostIp": "", "HostPort": "18000"}], "9/tcp": []},
                   "RestartPolicy": {"Name": "unless-stopped"}, "NanoCpus": 0, "CpuQuota": 0, "Memory": 0},
}


def test_import_keeps_the_configurations_spelling_where_it_means_the_same() -> None:
    attrs = attributes_from_inspect(INSPECT, DESIRED)
    differing = {k for k in DESIRED if attrs[k] != DESIRED[k]}
    assert differing == {"name"}  # busybox == busybox:latest, image CMD == none, image env dropped


def test_import_reads_real_differences() -> None:
    info = json.loads(json.dumps(INSPECT))
    info["Config"]["Env"].append("B=2")
    info["Config"]["Cmd"] = ["httpd", "-f"]
    info["HostConfig"] |= {"CpuQuota": 50_000, "CpuPeriod": 100_000, "Memory": 64 * 2**20,
                           "RestartPolicy": {"Name": ""}}
    attrs = attributes_from_inspect(info, DESIRED)
    assert attrs["env"] == {"A": "1", "B": "2"} and attrs["command"] == ["httpd", "-f"]
    assert (attrs["cpus"], attrs["memory"], attrs["restart"]) == (0.5, 64 * 2**20, "no")


# -- recorded configurations and history -------------------------------------------------


def test_a_recorded_config_round_trips_and_hides_secret_values() -> None:
    stack = Stack(name="demo", file="/p/berth.toml", apps=configs(WORLD))
    record = recorded_config(stack)
    assert stack_from_record(record) == stack
    hidden = {"stack": {"secrets": {"TOKEN": {"value": "hunter2"}}, "secret_values": {"K": "s3cret"}}}
    from planner.recorded import _redact

    text = json.dumps(_redact(hidden, under_secret=False))
    assert "hunter2" not in text and "s3cret" not in text and "sha256:" in text


def _entries(configs_by_serial: dict[int, str | None]) -> list[dict]:
    out = []
    for serial, config in configs_by_serial.items():
        state = State(stack="demo", serial=serial)
        out.append({"serial": serial, "time": 1.0, "who": "me", "note": "apply", "state": state.model_dump_json()}
                   | ({"config": config} if config else {}))
    return out


def test_config_in_effect_and_the_one_before() -> None:
    entries = _entries({1: "a", 2: "a", 3: None, 4: "b", 5: "b", 6: None})
    assert latest_config_digest(entries) == "b"
    assert previous_config(entries) == (2, "a")
    assert config_at(entries, 3) == (2, "a") and config_at(entries, 5) == (5, "b")
    assert config_at(entries, 0) is None
    assert previous_config(_entries({1: "a", 2: "a"})) is None


def test_versions_say_what_changed() -> None:
    a = State(stack="demo", serial=1, resources={})
    apps = configs({"web": {"image": "busybox:latest", "host_port": 8000}})
    b = applied(apps, {}, {"local"}).state().model_copy(update={"serial": 2})
    entries = [{"serial": s.serial, "time": 0, "who": "me", "note": "", "state": s.model_dump_json()} for s in (a, b)]
    (first, second) = versions(entries)
    assert first.added == () and set(second.added) == {"app.web.image@local", "app.web.container[0]@local"}


def test_record_digest_is_the_stores_name_for_it(tmp_path) -> None:
    from state.store import DiskStore

    store = DiskStore(tmp_path / "state")
    record = recorded_config(Stack(name="demo", file="/p/berth.toml", apps=configs(WORLD)))
    store.write(State(stack="demo"), note="apply", config=record)
    store.write(State(stack="demo"), note="apply", config=record)
    (first, second) = store.history()
    assert first["config"] == second["config"] == record_digest(record)
    assert store.config(first["config"]) == record
    store.close()


# -- saved plans and state mv ------------------------------------------------------------


def test_a_saved_plan_is_checked_against_lineage_and_serial(tmp_path) -> None:
    plan = plan_for({"world": WORLD, "change": {"other": {"env": {"A": "1"}}}})
    saved = SavedPlan(plan=plan, config={"stack": {}})
    path = tmp_path / "p.plan"
    saved.save(path)
    loaded = SavedPlan.load(path)
    assert loaded == saved
    state = State(stack=STACK, lineage=plan.lineage, serial=plan.serial)
    loaded.check(state, "here")
    with pytest.raises(SavedPlanError, match="stale plan: state changed since"):
        loaded.check(state.model_copy(update={"serial": plan.serial + 1}), "here")
    with pytest.raises(SavedPlanError, match="saved plan does not match this state"):
        loaded.check(state.model_copy(update={"lineage": "x"}), "here")
    with pytest.raises(SavedPlanError, match="does not match"):
        loaded.check(None, "here")
    (tmp_path / "junk").write_text("{}")
    with pytest.raises(SavedPlanError, match="is not a saved plan"):
        SavedPlan.load(tmp_path / "junk")


def test_a_fresh_saved_plan_refuses_a_state_made_since() -> None:
    saved = SavedPlan(plan=plan_for({"apps": WORLD}), config={})
    saved.check(None, "here")
    with pytest.raises(SavedPlanError, match="stale plan"):
        saved.check(State(stack=STACK, serial=1), "here")


def test_state_mv_forms() -> None:
    keys = ["app.web.image@local", "app.web.container[0]@local", "app.web.container[1]@local", "app.api.image@local"]
    assert moves(keys, "app.web", "app.front") == {
        "app.web.image@local": "app.front.image@local",
        "app.web.container[0]@local": "app.front.container[0]@local",
        "app.web.container[1]@local": "app.front.container[1]@local"}
    assert moves(keys, "app.web.container[1]@local", "app.web.container[0]@local") == {
        "app.web.container[1]@local": "app.web.container[0]@local"}
    for bad in (("app.web", "app.web.image@local"), ("app.web.image@local", "app.web.container[0]@local"),
                ("app.web.image@local", "app.web.image@gpu1")):
        with pytest.raises(AddressError):
            moves(keys, *bad)


def test_the_store_knows_the_latest_config_without_scanning(tmp_path) -> None:
    from state.store import DiskStore

    store = DiskStore(tmp_path / "state")
    assert store.latest_config() is None
    store.write(State(stack="demo"), note="apply", config={"a": 1})
    store.write(State(stack="demo"), note="state rm")
    assert store.latest_config() == record_digest({"a": 1}) == latest_config_digest(store.history())
    store.close()
