"""planner.graph on plans built by hand: which steps each change gets, and what waits for what.

Edges are compared as sets of "STEP > STEP" strings (STEP as Step.__str__ prints it), so a
missing or an extra edge fails the test.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from planner.diagnostics import DiagnosticsError
from planner.graph import Step, build_graph
from planner.plan import Action, Change, Plan

WEB0, WEB1, API0, DB0 = (f"app.{a}@local" for a in ("web.container[0]", "web.container[1]", "api.container[0]",
                                                    "db.container[0]"))
WEB_IMAGE, API_IMAGE = "app.web.image@local", "app.api.image@local"


def attrs(address: str, host_port: int = 8000, depends_on: tuple[str, ...] = (), **more: Any) -> dict[str, Any]:
    """The container attributes graph reads (name, host_port, depends_on), plus more."""
    app, index = address.split(".")[1], address.split("[")[1].split("]")[0]
    return {"name": f"berth-demo-{app}-{index}", "host_port": host_port, "depends_on": list(depends_on),
            "image": f"berth-demo-{app}:0123456789ab"} | more


def container(address: str, action: Action, before: dict | None = None, after: dict | None = None,
              ids: list[str] | None = None) -> Change:
    if action in (Action.CREATE, Action.REPLACE, Action.UPDATE, Action.NOOP):
        after = after if after is not None else attrs(address)
    if action in (Action.REPLACE, Action.UPDATE, Action.DELETE):
        before = before if before is not None else attrs(address)
        ids = ids if ids is not None else [f"ctr-{address}"]
    return Change(address=address, type="container", action=action, before=before, after=after, ids=ids or [])


def image(address: str, action: Action, source: str = "build") -> Change:
    after = None if action is Action.DELETE else {"source": source}
    ids = ["berth-demo-old:0123456789ab"] if action in (Action.DELETE, Action.CREATE_THEN_DELETE) else []
    return Change(address=address, type="image", action=action, after=after, ids=ids)


def graph_of(*changes: Change) -> nx.DiGraph:
    return build_graph(Plan(stack="demo", changes=list(changes)))


def steps(graph: nx.DiGraph) -> set[str]:
    return {str(s) for s in graph.nodes}


def edges(graph: nx.DiGraph) -> set[str]:
    return {f"{u} > {v}" for u, v in graph.edges}


def runs_before(graph: nx.DiGraph, first: str, second: str) -> bool:
    kind_a, address_a = first.split(" ", 1)
    kind_b, address_b = second.split(" ", 1)
    return nx.has_path(graph, Step(kind_a, address_a), Step(kind_b, address_b))  # type: ignore[arg-type]


# -- the steps of one change -------------------------------------------------------------------


def test_create_is_image_build_then_create_then_wait_for_every_replica() -> None:
    g = graph_of(image(WEB_IMAGE, Action.CREATE), container(WEB0, Action.CREATE),
                 container(WEB1, Action.CREATE, after=attrs(WEB1, 8001)))
    assert edges(g) == {
        f"build {WEB_IMAGE} > create {WEB0}", f"create {WEB0} > wait {WEB0}",
        f"build {WEB_IMAGE} > create {WEB1}", f"create {WEB1} > wait {WEB1}",
    }


def test_an_image_by_reference_is_pulled_not_built() -> None:
    g = graph_of(image(API_IMAGE, Action.CREATE, source="image"), container(API0, Action.CREATE))
    assert edges(g) == {f"pull {API_IMAGE} > create {API0}", f"create {API0} > wait {API0}"}


def test_replace_is_create_then_wait_the_create_stopping_the_old_one() -> None:
    g = graph_of(container(WEB0, Action.REPLACE))
    assert edges(g) == {f"create {WEB0} > wait {WEB0}"}


def test_update_is_update_then_wait() -> None:
    g = graph_of(container(WEB0, Action.UPDATE))
    assert edges(g) == {f"update {WEB0} > wait {WEB0}"}


def test_delete_is_one_remove() -> None:
    g = graph_of(container(WEB0, Action.DELETE))
    assert steps(g) == {f"remove {WEB0}"} and not g.edges


def test_a_retag_precedes_the_containers_that_use_the_tag() -> None:
    g = graph_of(image(WEB_IMAGE, Action.UPDATE), container(WEB0, Action.UPDATE))
    assert f"tag {WEB_IMAGE} > update {WEB0}" in edges(g)


def test_no_op_changes_add_no_steps() -> None:
    assert steps(graph_of(image(WEB_IMAGE, Action.NOOP), container(WEB0, Action.NOOP))) == set()
    g = graph_of(image(WEB_IMAGE, Action.NOOP), container(WEB0, Action.NOOP), container(WEB1, Action.UPDATE))
    assert steps(g) == {f"update {WEB1}", f"wait {WEB1}"}


def test_a_forgotten_change_adds_no_step() -> None:
    forgotten = Change(address=WEB0, type="container", action=Action.NOOP, before=attrs(WEB0), after=None)
    assert steps(graph_of(forgotten)) == set()


def test_a_second_container_deleted_at_an_address_is_removed_beside_the_replace() -> None:
    extra = Change(address=WEB0, type="container", action=Action.DELETE, before={"berth.app": "web"}, ids=["ctr-dup"])
    replace = container(WEB0, Action.REPLACE, ids=["ctr-web-0"])
    g = graph_of(replace, extra)
    assert steps(g) == {f"remove {WEB0}", f"create {WEB0}", f"wait {WEB0}"}
    assert g.nodes[Step("remove", WEB0)]["changes"] == [extra]
    assert g.nodes[Step("create", WEB0)]["changes"] == [replace]


def test_a_second_container_holding_the_name_is_removed_before_the_replace() -> None:
    extra = Change(address=WEB0, type="container", action=Action.DELETE, ids=["ctr-dup"],
                   before={"name": "berth-demo-web-0", "host_port": 8000})
    g = graph_of(container(WEB0, Action.REPLACE, ids=["ctr-web-0"]), extra)
    assert f"remove {WEB0} > create {WEB0}" in edges(g)


def test_steps_print_as_kind_and_address() -> None:
    assert str(Step("prune-image", WEB_IMAGE)) == "prune-image app.web.image@local"


# -- depends_on -------------------------------------------------------------------------------


def test_every_wait_of_a_dependency_precedes_the_dependents_create() -> None:
    g = graph_of(
        container(WEB0, Action.CREATE), container(WEB1, Action.CREATE, after=attrs(WEB1, 8001)),
        container(API0, Action.CREATE, after=attrs(API0, 9000, depends_on=("web",))),
    )
    assert {f"wait {WEB0} > create {API0}", f"wait {WEB1} > create {API0}"} <= edges(g)
    assert not runs_before(g, f"create {API0}", f"create {WEB0}")


def test_a_dependents_update_also_waits_for_its_dependency() -> None:
    g = graph_of(container(WEB0, Action.REPLACE),
                 container(API0, Action.UPDATE, after=attrs(API0, 9000, depends_on=("web",))))
    assert f"wait {WEB0} > update {API0}" in edges(g)


def test_a_dependency_with_nothing_to_do_adds_no_edge() -> None:
    g = graph_of(container(WEB0, Action.NOOP), container(API0, Action.CREATE, after=attrs(API0, 9000, depends_on=("web",))))
    assert edges(g) == {f"create {API0} > wait {API0}"}


def test_dependents_are_removed_before_what_they_depend_on() -> None:
    g = graph_of(
        container(WEB0, Action.DELETE), container(WEB1, Action.DELETE, before=attrs(WEB1, 8001)),
        container(API0, Action.DELETE, before=attrs(API0, 9000, depends_on=("web",))),
    )
    assert edges(g) == {f"remove {API0} > remove {WEB0}", f"remove {API0} > remove {WEB1}"}


def test_replacing_both_replaces_the_dependent_once_its_dependency_is_ready() -> None:
    g = graph_of(
        container(WEB0, Action.REPLACE),
        container(API0, Action.REPLACE, before=attrs(API0, 9000, depends_on=("web",)),
                  after=attrs(API0, 9000, depends_on=("web",))),
    )
    assert runs_before(g, f"wait {WEB0}", f"create {API0}")
    assert not any(s.kind == "remove" for s in g.nodes)  # each create stops its old container itself


def test_depends_on_that_loops_is_a_diagnostic_naming_the_cycle() -> None:
    with pytest.raises(DiagnosticsError) as caught:
        graph_of(
            container(WEB0, Action.CREATE, after=attrs(WEB0, 8000, depends_on=("api",))),
            container(API0, Action.CREATE, after=attrs(API0, 9000, depends_on=("web",))),
        )
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.severity == "error"
    assert diagnostic.summary.startswith("steps form a cycle: ")
    for step in (f"create {WEB0}", f"wait {WEB0}", f"create {API0}", f"wait {API0}"):
        assert step in diagnostic.summary


# -- host ports and names freed before they are reused ----------------------------------------


def test_a_create_on_a_host_port_another_removal_frees_waits_for_it() -> None:
    g = graph_of(
        container(WEB1, Action.DELETE, before=attrs(WEB1, 8001)),
        container(API0, Action.CREATE, after=attrs(API0, 8001)),
    )
    assert f"remove {WEB1} > create {API0}" in edges(g)


def test_replicas_moving_up_one_port_wait_for_the_replica_that_frees_it() -> None:
    g = graph_of(
        container(WEB0, Action.REPLACE, before=attrs(WEB0, 8000), after=attrs(WEB0, 8001)),
        container(WEB1, Action.REPLACE, before=attrs(WEB1, 8001), after=attrs(WEB1, 8002)),
    )
    assert f"create {WEB1} > create {WEB0}" in edges(g)  # replica 1's replace frees port 8001
    assert f"wait {WEB1} > create {WEB0}" in edges(g)  # one at a time, in the order the ports allow
    assert not runs_before(g, f"create {WEB0}", f"create {WEB1}")


def test_a_port_freed_on_another_host_or_a_different_port_adds_no_edge() -> None:
    elsewhere = "app.web.container[1]@gpu1"
    g = graph_of(
        container(elsewhere, Action.DELETE, before=attrs(elsewhere, 9000)),
        container(WEB1, Action.DELETE, before=attrs(WEB1, 8001)),
        container(API0, Action.CREATE, after=attrs(API0, 9000)),
    )
    assert edges(g) == {f"create {API0} > wait {API0}"}


# -- images removed last ----------------------------------------------------------------------


def test_an_image_removal_waits_for_every_container_step_of_its_app() -> None:
    g = graph_of(
        image(WEB_IMAGE, Action.DELETE),
        container(WEB0, Action.DELETE), container(WEB1, Action.DELETE, before=attrs(WEB1, 8001)),
        container(API0, Action.REPLACE, before=attrs(API0, 9000), after=attrs(API0, 9000)),
    )
    assert {e for e in edges(g) if e.endswith(f"remove-image {WEB_IMAGE}")} == {
        f"remove {WEB0} > remove-image {WEB_IMAGE}", f"remove {WEB1} > remove-image {WEB_IMAGE}"}


def test_the_old_image_is_pruned_after_the_new_one_is_built_and_every_container_moved() -> None:
    g = graph_of(image(WEB_IMAGE, Action.CREATE_THEN_DELETE), container(WEB0, Action.REPLACE),
                 container(WEB1, Action.REPLACE, before=attrs(WEB1, 8001), after=attrs(WEB1, 8001)))
    assert {e for e in edges(g) if e.endswith(f"prune-image {WEB_IMAGE}")} == {
        f"build {WEB_IMAGE} > prune-image {WEB_IMAGE}",
        f"create {WEB0} > prune-image {WEB_IMAGE}", f"wait {WEB0} > prune-image {WEB_IMAGE}",
        f"create {WEB1} > prune-image {WEB_IMAGE}", f"wait {WEB1} > prune-image {WEB_IMAGE}",
    }
    assert f"build {WEB_IMAGE} > create {WEB0}" in edges(g)


@pytest.mark.parametrize("action,source,kind", [
    (Action.CREATE_THEN_DELETE, "build", "build"),
    (Action.CREATE, "image", "pull"),
])
def test_old_containers_stay_until_the_new_image_exists(action: Action, source: str, kind: str) -> None:
    g = graph_of(image(WEB_IMAGE, action, source=source), container(WEB0, Action.REPLACE))
    assert runs_before(g, f"{kind} {WEB_IMAGE}", f"create {WEB0}")
