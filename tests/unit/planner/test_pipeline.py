"""The engine's front: planner.pipeline (plan, apply of a plan without changes, refresh),
planner.rollback and planner.importing on plain data, with a fake provider. No Docker."""

from __future__ import annotations

from typing import Any

import pytest

from planner import pipeline
from planner.desired import HostConfig, Stack
from planner.diagnostics import DiagnosticsError
from planner.importing import adopt, container_address, desired_attributes
from planner.pipeline import Context, PlanOpts
from planner.recorded import recorded_config
from planner.rollback import rollback_point
from planner.secrets import SecretKey, SecretValues
from state.address import Address, AddressError
from state.errors import StateError
from state.model import ResourceState
from state.store import DiskStore
from unit.planner.test_diff import STACK, applied, configs

APPS = {
    "web": {"image": "busybox:latest", "host_port": 9000, "depends_on": ["db"]},
    "db": {"image": "busybox:latest", "host_port": 9001},
}


class FakeHost:
    """A host whose observation is given; counts what it is asked."""

    def __init__(self, observation: Any, inspect: dict[str, Any] | None = None) -> None:
        self.observation, self.inspected, self.asked = observation, inspect, 0

    def observe(self, stack: str, *, secrets: bool = True) -> Any:
        self.asked += 1
        return self.observation

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        return self.inspected

    def container_limits(self, ids: list[str]) -> dict[str, Any]:
        return {}  # not read: the given observation is the whole truth


def world(apps: dict[str, Any] = APPS):
    desired = configs(apps)
    return desired, applied(desired, {}, {"local"})


def context(tmp_path, apps, provider=None, hosts=None) -> Context:
    stack = Stack(name=STACK, file=str(tmp_path / "berth.toml"), apps=apps, hosts=hosts or {})

    def no_host(host: str) -> Any:
        pytest.fail(f"host {host} was contacted")

    return Context(stack, provider or no_host, SecretValues(stack, SecretKey(tmp_path / "secrets.key")))


def test_a_plan_from_state_alone_contacts_no_host(tmp_path) -> None:
    apps, applied_world = world()
    plan = pipeline.plan(context(tmp_path, apps), applied_world.state(), PlanOpts(refresh=False))
    assert not plan.has_changes


def test_a_refreshed_plan_reads_each_host_once(tmp_path) -> None:
    apps, applied_world = world()
    host = FakeHost(applied_world.observed()["local"])
    plan = pipeline.plan(context(tmp_path, apps, provider=lambda h: host), applied_world.state())
    assert not plan.has_changes and host.asked == 1


def test_replace_then_target_narrow_the_plan(tmp_path) -> None:
    apps, applied_world = world()
    opts = PlanOpts(refresh=False, replace=("app.db.container[0]@local",), targets=("app.db",))
    plan = pipeline.plan(context(tmp_path, apps), applied_world.state(), opts)
    assert {c.address: c.action.word for c in plan.actions} == {"app.db.container[0]@local": "replace"}
    assert plan.warnings[0].startswith("Resource targeting is in effect: only app.db")


def test_a_host_the_file_no_longer_defines_is_refused_and_local_is_always_defined(tmp_path) -> None:
    apps, applied_world = world()
    state = applied_world.state()
    moved = {k: r.model_copy(update={"host": "gpu-a"}) if "web" in k else r for k, r in state.resources.items()}
    stack = Stack(name=STACK, file=str(tmp_path / "berth.toml"), apps=apps)
    pipeline.check_hosts_still_defined(stack, state)
    with pytest.raises(DiagnosticsError, match=r"on host gpu-a .* no longer defines \[hosts.gpu-a\]"):
        pipeline.check_hosts_still_defined(stack, state.model_copy(update={"resources": moved}))


def test_hosts_are_read_local_first_then_in_file_order(tmp_path) -> None:
    hosts = {name: HostConfig(name=name, user="root", address=f"10.0.0.{i}") for i, name in enumerate(("b", "a"), 1)}
    apps = configs({"x": {"image": "busybox", "host": "a", "host_port": 9000},
                    "y": {"image": "busybox", "host": "b", "host_port": 9001}})
    stack = Stack(name=STACK, file="/p/berth.toml", apps=apps, hosts=hosts)
    assert pipeline.declared_hosts(stack) == ("local", "b", "a")
    assert pipeline.hosts_to_read(stack, None) == ["local", "b", "a"]


def test_applying_a_plan_without_changes_records_the_configuration_once(tmp_path) -> None:
    apps, applied_world = world()
    ctx = context(tmp_path, apps)
    store = DiskStore(tmp_path / "state")
    try:
        state = store.write(applied_world.state().model_copy(update={"serial": 0}), note="seed")
        plan = pipeline.plan(ctx, state, PlanOpts(refresh=False))
        config = pipeline.config_to_record(ctx.stack, PlanOpts())
        first = pipeline.apply(ctx, plan, store, state, config=config, note="apply")
        assert first.state.serial == state.serial + 1 and store.latest_config() is not None
        again = pipeline.apply(ctx, plan, store, first.state, config=config, note="apply")
        assert again.state.serial == first.state.serial
        assert pipeline.config_to_record(ctx.stack, PlanOpts(targets=("app.web",))) is None
        assert pipeline.config_to_record(ctx.stack, PlanOpts(destroy=True))["stack"]["apps"] == {}
    finally:
        store.close()


def test_refresh_writes_only_what_changed(tmp_path) -> None:
    apps, applied_world = world()
    store = DiskStore(tmp_path / "state")
    try:
        state = store.write(applied_world.state().model_copy(update={"serial": 0}), note="seed")
        host = FakeHost(applied_world.observed()["local"])
        findings, stored = pipeline.refresh(context(tmp_path, apps, provider=lambda h: host), store, state)
        assert findings == [] and stored is None
    finally:
        store.close()


def test_rollback_needs_an_earlier_configuration(tmp_path) -> None:
    apps, applied_world = world()
    store = DiskStore(tmp_path / "state")
    try:
        with pytest.raises(StateError, match="no earlier configuration is recorded"):
            rollback_point(store, None)
        stack = Stack(name=STACK, file="/p/berth.toml", apps=apps)
        store.write(applied_world.state().model_copy(update={"serial": 0}), note="apply", config=recorded_config(stack))
        point = rollback_point(store, 1)
        assert point.serial == 1 and point.record == recorded_config(stack) and point.state.resources
        with pytest.raises(StateError, match="by serial 0"):
            rollback_point(store, 0)
    finally:
        store.close()


def test_import_checks_the_address_then_adopts(tmp_path) -> None:
    with pytest.raises(AddressError, match="import adopts containers: app.web.image@local is an image"):
        container_address("app.web.image@local")
    apps, _ = world()
    ctx = context(tmp_path, apps)
    with pytest.raises(StateError, match="the stack file has no app.web.container"):
        desired_attributes(ctx, container_address("app.web.container[1]@local"))
    address = container_address("app.web.container[0]@local")
    desired = desired_attributes(ctx, address)
    info = {"Id": "c0ffee" * 10, "Name": "/old-web", "State": {"Running": True},
            "Config": {"Image": "busybox"}, "HostConfig": {}}
    store = DiskStore(tmp_path / "state")
    try:
        resource, stored = adopt(store, STACK, address, FakeHost(None, inspect=info), "old-web", desired)
        assert isinstance(resource, ResourceState) and resource.status == "ready"
        assert stored.resources[str(address)].attributes["image"] == "busybox:latest"
        with pytest.raises(StateError, match="already in state"):
            adopt(store, STACK, address, FakeHost(None, inspect=info), "old-web", desired)
    finally:
        store.close()
    assert Address.parse(str(address)).host == "local"
