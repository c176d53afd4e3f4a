"""The seams of the core types: the handler table is complete, attribute tables keep the
order and classes the former key tuples had, addresses equal their text."""

from __future__ import annotations

import json

from planner.attributes import CONTAINER, GATEWAY, WATCHER, ChangeClass
from planner.graph import Step, StepKind
from planner.plan import Action, Change, Plan
from state.address import Address, ResourceKind
from state.canonical import canonical_hash
from state.model import ResourceState


def test_every_step_kind_has_a_handler() -> None:
    import planner.apply  # noqa: F401  (fills the table, checks it at import)
    from planner.steps import HANDLERS, check_complete

    check_complete()
    assert {kind for kind, action in HANDLERS if action is None} == set(StepKind)
    assert HANDLERS[(StepKind.WAIT, Action.CREATE_THEN_DELETE)].__module__ == "planner.serving.steps"
    assert HANDLERS[(StepKind.WAIT, None)].__module__ == "planner.steps"


def test_attribute_tables_keep_the_order_plans_list_them_in() -> None:
    assert CONTAINER.keys(ChangeClass.REPLACE) == ("image", "command", "env", "port", "host_port", "secrets",
                                                   "secret_env", "gpus", "volumes", "shm_size", "ipc", "ulimits",
                                                   "entrypoint", "stop_timeout", "weights")
    assert CONTAINER.keys(ChangeClass.UPDATE) == ("name", "restart", "cpus", "memory")
    assert CONTAINER.keys(ChangeClass.RESTART) == ("secret_versions",)
    assert CONTAINER.keys(ChangeClass.BERTH) == ("readiness", "liveness", "readiness_timeout", "depends_on",
                                                 "max_unavailable", "port_range")
    assert CONTAINER.optional == ("max_unavailable", "port_range", "secrets", "secret_env", "secret_versions", "gpus", "volumes",
                                  "shm_size", "ipc", "ulimits", "entrypoint", "stop_timeout", "weights")
    assert GATEWAY.keys(ChangeClass.REPLACE) == ("image", "port", "admin_port", "network", "auth")
    assert GATEWAY.optional == ("api_keys", "auth", "drain_timeout", "tls")  # a gateway without keys keeps its hash
    assert WATCHER.keys(ChangeClass.REPLACE) == ("image", "socket", "script_hash", "targets")


def test_an_optional_attribute_counts_only_when_set() -> None:
    attrs = {"image": "x", "command": None, "env": {}, "port": 1, "host_port": None, "secrets": []}
    assert CONTAINER.view(attrs, ChangeClass.REPLACE) == {"image": "x", "command": None, "env": {}, "port": 1,
                                                          "host_port": None}


def test_the_canonical_hash_is_sha256_of_sorted_compact_json() -> None:
    import hashlib

    value = {"b": [1, 2], "a": {"y": None, "x": "é"}}
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert canonical_hash(value) == hashlib.sha256(text.encode()).hexdigest()


def test_addresses_are_values_written_as_their_text() -> None:
    address = Address.parse("app.web.container[1]@gpu1")
    assert address.kind is ResourceKind.CONTAINER and address == "app.web.container[1]@gpu1"
    assert {address: 1}["app.web.container[1]@gpu1"] == 1 and Address.parse(address) is address
    change = Change(address="app.web.container[1]@gpu1", type="container", action=Action.CREATE)
    assert change.address == address and change.type is ResourceKind.CONTAINER
    dumped = json.loads(Plan(stack="s", changes=[change]).model_dump_json())
    assert dumped["changes"][0]["address"] == "app.web.container[1]@gpu1" and dumped["changes"][0]["type"] == "container"
    assert Plan.model_validate(dumped).changes[0] == change
    resource = ResourceState(address=address, type="container", host="gpu1")
    assert json.loads(resource.model_dump_json())["address"] == "app.web.container[1]@gpu1"
    assert Step("wait", "app.web.container[1]@gpu1") == Step(StepKind.WAIT, address)
