"""Plan → step graph: which steps apply runs, and what each must wait for.

Built in small named passes over an nx.DiGraph whose nodes are Steps (edge u → v: v
runs after u): one pass adds each change's steps, then dependency edges (images and
secret files before containers, depends_on readiness before dependents, dependents
removed before what they depend on, a host port or name freed before it is reused, an
app's replicas replaced a few at a time, old images pruned and unused secret files
removed last).

A replaced container is a `create` step and a `wait` step (planner.steps.replace and
replace_wait): the new container is created before the old one stops, so a config Docker
refuses leaves the old one serving, and the old one is removed only once the new one
passed readiness (it is started again if the new one does not get there).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from planner.diagnostics import Diagnostic, DiagnosticsError
from planner.plan import Action, Change, Plan
from providers.base import BUILD_HOST
from state.address import Address, ResourceKind

if TYPE_CHECKING:
    import networkx as nx



class StepKind(StrEnum):
    """What a step does; planner.steps holds one handler per kind (checked at import)."""

    BUILD = "build"
    DELIVER = "deliver"
    PULL = "pull"
    TAG = "tag"
    REMOVE_IMAGE = "remove-image"
    PRUNE_IMAGE = "prune-image"
    REMOVE = "remove"
    CREATE = "create"
    UPDATE = "update"
    WAIT = "wait"
    SYNC_SECRET = "sync-secret"
    REMOVE_SECRET = "remove-secret"
    GATEWAY_IMAGE = "gateway-image"
    GATEWAY_START = "gateway-start"
    GATEWAY_ROUTES = "gateway-routes"
    GATEWAY_REMOVE = "gateway-remove"
    ROLL_START = "roll-start"
    ROLL_SWITCH = "roll-switch"
    WATCHER_IMAGE = "watcher-image"
    WATCHER_START = "watcher-start"
    WATCHER_REMOVE = "watcher-remove"
    CREATE_VOLUME = "create-volume"
    REMOVE_VOLUME = "remove-volume"
    WEIGHTS = "fetch-weights"


K = StepKind
# A rolling replace (a container change CREATE_THEN_DELETE): the new replica starts beside
# the old one (roll-start), passes readiness (wait), then takes the old one's place in the
# gateway, which drains the old one before it is stopped (roll-switch).
ROLLING: list[StepKind] = [K.ROLL_START, K.WAIT, K.ROLL_SWITCH]
# Step kinds that start a container, and those that stop one.
STARTS = {K.CREATE, K.UPDATE, K.ROLL_START}
STOPS = {K.REMOVE, K.ROLL_SWITCH}


def _replacing(graph: nx.DiGraph, step: Step) -> bool:
    """A create that replaces a container: it stops (and removes) the old one too, unless
    a remove step of its own does that first (_split_swaps)."""
    return (step.kind == K.CREATE and graph.nodes[step]["changes"][0].action is Action.REPLACE
            and not graph.nodes[step].get("split"))


def _replaced_by_remove(graph: nx.DiGraph, step: Step) -> bool:
    return step.kind == K.REMOVE and any(c.action is Action.REPLACE for c in graph.nodes[step]["changes"])


def _stops(graph: nx.DiGraph, step: Step) -> bool:
    """A step after which a container may be gone: a replace's wait removes the old one
    (which its create only stopped, to start it again should the new one fail)."""
    return step.kind in STOPS or _replacing(graph, step) or _replace_wait(graph, step)


def _replace_wait(graph: nx.DiGraph, step: Step) -> bool:
    create = Step(K.CREATE, step.address)
    return step.kind == K.WAIT and create in graph and _replacing(graph, create)


@dataclass(frozen=True)
class Step:
    """One node of the graph. Made from text too (`Step("wait", "app.web.container[0]@local")`):
    both are parsed here, once."""

    kind: StepKind
    address: Address

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", StepKind(self.kind))
        object.__setattr__(self, "address", Address.parse(self.address))

    def __str__(self) -> str:
        return f"{self.kind} {self.address}"


def build_graph(plan: Plan) -> nx.DiGraph:
    import networkx as nx

    graph = nx.DiGraph()
    for change in plan.actions:
        _add_steps(graph, change)
    _split_swaps(graph)
    _image_edges(graph)
    _secret_edges(graph)
    _weights_edges(graph)
    _depends_on_edges(graph)
    _destroy_order_edges(graph)
    _reuse_edges(graph)
    _replica_order_edges(graph)
    _prune_edges(graph)
    _gateway_edges(graph)
    _watcher_edges(graph)
    _volume_edges(graph)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    raise DiagnosticsError([Diagnostic("steps form a cycle: " + " -> ".join(str(u) for u, _ in cycle))])


def _add_steps(graph: nx.DiGraph, change: Change) -> None:
    """The steps of one change, chained in order."""
    kinds: list[StepKind]
    if change.type is ResourceKind.IMAGE:
        source = (change.after or {}).get("source")
        # Images for other hosts are built here, then delivered over the host's connection,
        # unless they are built on that host (build_on = "host").
        on_host = (change.after or {}).get("build_on") == "host"
        remote = change.address.host != BUILD_HOST and not on_host
        built: list[StepKind] = [K.BUILD, K.DELIVER] if remote else [K.BUILD]
        match change.action:
            case Action.CREATE:
                kinds = built if source == "build" else [K.PULL]
            case Action.CREATE_THEN_DELETE:
                kinds = [*built, K.PRUNE_IMAGE]
            case Action.UPDATE:
                kinds = [K.TAG]
            case Action.DELETE:
                kinds = [K.REMOVE_IMAGE]
            case _:
                raise AssertionError(f"no steps for {change.action!r} on an image")
    elif change.type is ResourceKind.GATEWAY:
        match change.action:
            case Action.CREATE:
                kinds = [K.GATEWAY_IMAGE, K.GATEWAY_START, K.GATEWAY_ROUTES]
            case Action.REPLACE:
                kinds = [K.GATEWAY_IMAGE, K.GATEWAY_REMOVE, K.GATEWAY_START, K.GATEWAY_ROUTES]
            case Action.UPDATE:
                kinds = [K.GATEWAY_ROUTES]  # reloaded live: the proxy keeps running
            case Action.DELETE:
                kinds = [K.GATEWAY_REMOVE]
            case _:
                raise AssertionError(f"no steps for {change.action!r} on a gateway")
    elif change.type is ResourceKind.WATCHER:
        kinds = _watcher_steps(change)
    elif change.type is ResourceKind.VOLUME:
        match change.action:
            case Action.CREATE:
                kinds = [K.CREATE_VOLUME]  # an existing one (adopted) is kept, data and all
            case Action.DELETE:
                kinds = [K.REMOVE_VOLUME]
            case _:
                raise AssertionError(f"no steps for {change.action!r} on a volume")
    elif change.type is ResourceKind.WEIGHTS:
        match change.action:
            case Action.CREATE:
                kinds = [K.WEIGHTS]  # fetched (or copied) into the host's cache
            case _:
                raise AssertionError(f"no steps for {change.action!r} on weights")
    elif change.type is ResourceKind.SECRET:
        match change.action:
            case Action.CREATE | Action.UPDATE:
                kinds = [K.SYNC_SECRET]  # write the file (again): a source-only change costs one write
            case Action.DELETE:
                kinds = [K.REMOVE_SECRET]
            case _:
                raise AssertionError(f"no steps for {change.action!r} on a secret")
    else:
        match change.action:
            case Action.CREATE:
                kinds = [K.CREATE, K.WAIT]
            case Action.REPLACE:
                kinds = [K.CREATE, K.WAIT]  # the create stops the old one once the new one exists
            case Action.CREATE_THEN_DELETE:
                kinds = ROLLING
            case Action.UPDATE:
                kinds = [K.UPDATE, K.WAIT]
            case Action.DELETE:
                kinds = [K.REMOVE]
            case _:
                raise AssertionError(f"no steps for {change.action!r} on a container")
    steps = [Step(kind, change.address) for kind in kinds]
    for step in steps:
        if step in graph:  # a second DELETE for one address (duplicate containers): one step removes all
            graph.nodes[step]["changes"].append(change)
        else:
            graph.add_node(step, changes=[change])
    for before, after in zip(steps, steps[1:]):
        graph.add_edge(before, after)


def _split_swaps(graph: nx.DiGraph) -> None:
    """Replaces that take each other's host port or name (two apps swapping ports) cannot
    each create first: their old containers are removed by steps of their own, the
    new ones created once what they need is freed (_reuse_edges)."""
    import networkx as nx

    creates = [s for s in graph.nodes if _replacing(graph, s)]
    frees = nx.DiGraph()
    held = {(s.address.host, key, (graph.nodes[s]["changes"][0].before or {}).get(key)): s
            for s in creates for key in ("host_port", "name")}
    for step in creates:
        after = graph.nodes[step]["changes"][0].after or {}
        for key in ("host_port", "name"):
            holder = held.get((step.address.host, key, after.get(key)))
            if holder is not None and holder != step and after.get(key) is not None:
                frees.add_edge(holder, step)
    for component in nx.strongly_connected_components(frees):
        if len(component) < 2:
            continue
        for step in component:
            change = graph.nodes[step]["changes"][0]
            remove = Step(K.REMOVE, step.address)
            if remove in graph:
                graph.nodes[remove]["changes"].append(change)
            else:
                graph.add_node(remove, changes=[change])
            graph.add_edge(remove, step)
            graph.nodes[step]["split"] = True


def _by_app(graph: nx.DiGraph, kinds: set[str]) -> dict[tuple[str, str], list[Step]]:
    """Steps of the given kinds, keyed by (app, host)."""
    found: dict[tuple[str, str], list[Step]] = defaultdict(list)
    for step in graph.nodes:
        if step.kind in kinds:
            address = step.address
            found[(address.app, address.host)].append(step)
    return found


def _image_edges(graph: nx.DiGraph) -> None:
    """The image exists before any container of its app is created (a replace's create
    stops the old one): a failed build or pull leaves the app running."""
    images = _by_app(graph, {K.BUILD, K.DELIVER, K.PULL, K.TAG})
    for key, steps in _by_app(graph, {*STARTS, K.REMOVE}).items():
        for image_step in images.get(key, []):
            for step in steps:
                if step.kind != K.REMOVE or _replaced_by_remove(graph, step):
                    graph.add_edge(image_step, step)


def _secret_edges(graph: nx.DiGraph) -> None:
    """An app's secret files are written before its containers are created or restarted,
    and before an old container is removed for a replace (a source that fails at apply
    leaves the app running); a file no longer wanted goes after every container removal
    on its host: the container that mounted it may now have another app's address (after
    `state mv`), and removing a file is quick."""
    syncs = _by_app(graph, {K.SYNC_SECRET})
    removals: dict[str, list[Step]] = defaultdict(list)
    for (_app, host), steps in _by_app(graph, {K.REMOVE_SECRET}).items():
        removals[host].extend(steps)
    for key, steps in _by_app(graph, {*STARTS, *STOPS, K.WAIT}).items():
        for step in steps:
            if step.kind in STARTS or _replaced_by_remove(graph, step):
                for sync in syncs.get(key, []):
                    graph.add_edge(sync, step)
            if _stops(graph, step):
                for removal in removals.get(key[1], []):
                    graph.add_edge(step, removal)


def _weights_edges(graph: nx.DiGraph) -> None:
    """An app's weights are in its host's cache before its containers are created or
    restarted, and before an old replica is stopped for a replace: the new one then
    starts on weights already there, and a fetch that fails leaves the app running. A
    fetch that needs a token waits for that secret's file on the host."""
    fetches = _by_app(graph, {K.WEIGHTS})
    syncs = _by_app(graph, {K.SYNC_SECRET})
    for key, steps in _by_app(graph, {*STARTS, *STOPS}).items():
        for step in steps:
            if step.kind in STARTS or _replaced_by_remove(graph, step):
                for fetch in fetches.get(key, []):
                    graph.add_edge(fetch, step)
    for key, steps in fetches.items():
        for fetch in steps:
            secret = (graph.nodes[fetch]["changes"][0].after or {}).get("secret")
            for sync in syncs.get(key, []):
                if sync.address.secret == secret:
                    graph.add_edge(sync, fetch)


def _depends_on_edges(graph: nx.DiGraph) -> None:
    """A dependent's container starts once every replica it depends on passed readiness."""
    waits: dict[str, list[Step]] = defaultdict(list)
    for (app, _host), steps in _by_app(graph, {K.WAIT}).items():
        waits[app].extend(steps)
    for step in list(graph.nodes):
        if step.kind not in STARTS:
            continue
        change = graph.nodes[step]["changes"][0]
        for dependency in (change.after or {}).get("depends_on", []):
            for wait in waits.get(dependency, []):
                graph.add_edge(wait, step)


def _destroy_order_edges(graph: nx.DiGraph) -> None:
    """Removals run in reverse dependency order: a dependent goes before what it needs."""
    removes = _by_app(graph, {K.REMOVE})
    by_app: dict[str, list[Step]] = defaultdict(list)
    for (app, _host), steps in removes.items():
        by_app[app].extend(steps)
    for steps in removes.values():
        for step in steps:
            change = graph.nodes[step]["changes"][0]
            for dependency in (change.before or {}).get("depends_on", []) or []:
                for target in by_app.get(dependency, []):
                    graph.add_edge(step, target)


def _reuse_edges(graph: nx.DiGraph) -> None:
    """A container created on a host port or name that another one frees (removed, or
    replaced: its create removes the old one) waits for it."""
    freed: dict[tuple[str, str, object], list[Step]] = defaultdict(list)
    for step in graph.nodes:
        if step.kind == K.REMOVE or _replacing(graph, step):
            host = step.address.host
            for change in graph.nodes[step]["changes"]:
                before = change.before or {}
                for key in ("host_port", "name"):
                    if before.get(key) is not None:
                        freed[(host, key, before[key])].append(step)
    for step in list(graph.nodes):
        if step.kind not in (K.CREATE, K.UPDATE):  # update: a rename (after an interrupted rolling replace)
            continue
        after = graph.nodes[step]["changes"][0].after or {}
        host = step.address.host
        for key in (("host_port", "name") if step.kind == K.CREATE else ("name",)):
            for remove in freed.get((host, key, after.get(key)), []):
                if remove != step:  # a replace frees its own port and name itself
                    graph.add_edge(remove, step)


def _replica_order_edges(graph: nx.DiGraph) -> None:
    """An app's replicas are replaced (or restarted) a few at a time: at most
    max_unavailable of them (default 1) are down at once, the next one stopping only
    once one before it passed readiness; a replica that fails readiness stops the roll.
    Replicas go in the order the graph already implies (a replica whose new host port
    another one frees goes after it), then by index."""
    import networkx as nx

    disruptive: dict[tuple[str, str], list[Step]] = defaultdict(list)
    for step in graph.nodes:
        if _replacing(graph, step) or (step.kind == K.UPDATE and _restarts(graph.nodes[step]["changes"][0])):
            disruptive[(step.address.app, step.address.host)].append(step)
    if not any(len(steps) > 1 for steps in disruptive.values()):
        return
    rank = {node: i for i, node in enumerate(nx.lexicographical_topological_sort(graph, key=_order))}
    for steps in disruptive.values():
        steps.sort(key=lambda s: (rank[s], s.address.index))
        allowed = max(1, int((graph.nodes[steps[0]]["changes"][0].after or {}).get("max_unavailable") or 1))
        for before, step in zip(steps, steps[allowed:]):
            ready = Step(K.WAIT, before.address)
            if ready in graph and not nx.has_path(graph, step, ready):
                graph.add_edge(ready, step)


def _order(step: Step) -> str:
    address = step.address
    return f"{address.host}/{address.app}/{address.kind}/{address.index:09d}/{address.secret or ''}/{step.kind}"


def _restarts(change: Change) -> bool:
    """An update that restarts the container (a mounted secret's value changed)."""
    from planner.attributes import CONTAINER, ChangeClass

    return bool(CONTAINER.changed(change.before or {}, change.after or {}, ChangeClass.RESTART))


def _prune_edges(graph: nx.DiGraph) -> None:
    """An image is removed only after every container step of its app is done."""
    containers = _by_app(graph, {*STARTS, *STOPS, K.WAIT})
    for key, steps in _by_app(graph, {K.PRUNE_IMAGE, K.REMOVE_IMAGE}).items():
        for image_step in steps:
            for step in containers.get(key, []):
                graph.add_edge(step, image_step)


def _gateway_edges(graph: nx.DiGraph) -> None:
    """A host's gateway loads its routes once every container step on that host is done:
    new replicas have passed readiness, old ones are gone, so the upstreams it is given
    are the ones that run."""
    containers: dict[str, list[Step]] = defaultdict(list)
    for step in graph.nodes:
        if step.kind in {*STARTS, *STOPS, K.WAIT}:
            containers[step.address.host].append(step)
    for step in list(graph.nodes):
        if step.kind == K.GATEWAY_ROUTES:
            for container_step in containers.get(step.address.host, []):
                graph.add_edge(container_step, step)


def _watcher_steps(change: Change) -> list[StepKind]:
    """The liveness watcher is replaced, never updated: it keeps nothing worth a reload."""
    match change.action:
        case Action.CREATE:
            return [K.WATCHER_IMAGE, K.WATCHER_START]
        case Action.REPLACE:
            return [K.WATCHER_IMAGE, K.WATCHER_REMOVE, K.WATCHER_START]
        case Action.DELETE:
            return [K.WATCHER_REMOVE]
        case _:
            raise AssertionError(f"no steps for {change.action!r} on a watcher")


def _watcher_edges(graph: nx.DiGraph) -> None:
    """A watcher going away goes before the host's containers are removed: one stopping
    fails its liveness, and the watcher must not restart what berth is taking down. Its
    image comes from the gateway's image step when the plan has one on that host (one
    build, one transfer)."""
    removes: dict[str, list[Step]] = defaultdict(list)
    gateway_images: dict[str, Step] = {}
    for step in graph.nodes:
        host = step.address.host
        if step.kind == K.REMOVE or _replacing(graph, step):
            removes[host].append(step)
        elif step.kind == K.GATEWAY_IMAGE:
            gateway_images[host] = step
    for step in list(graph.nodes):
        host = step.address.host
        if step.kind == K.WATCHER_REMOVE and graph.nodes[step]["changes"][0].action is Action.DELETE:
            for remove in removes.get(host, []):
                graph.add_edge(step, remove)
        elif step.kind == K.WATCHER_IMAGE and host in gateway_images:
            graph.add_edge(gateway_images[host], step)


def _volume_edges(graph: nx.DiGraph) -> None:
    """A named volume exists before any container that mounts it starts (Docker would
    make a missing one itself, unlabelled); one removed (destroy --volumes) goes after
    every container on its host has stopped: Docker refuses to remove one in use."""
    creates = {(s.address.host, s.address.volume): s for s in graph.nodes if s.kind == K.CREATE_VOLUME}
    removes: dict[str, list[Step]] = defaultdict(list)
    for step in graph.nodes:
        if step.kind == K.REMOVE_VOLUME:
            removes[step.address.host].append(step)
    for step in list(graph.nodes):
        host = step.address.host
        if step.kind in STARTS and creates:
            for entry in (graph.nodes[step]["changes"][0].after or {}).get("volumes") or ():
                create = creates.get((host, entry.split(":", 1)[0]))
                if create is not None:
                    graph.add_edge(create, step)
        if removes.get(host) and (_stops(graph, step) or step.kind in (K.GATEWAY_REMOVE, K.WATCHER_REMOVE)):
            for remove in removes[host]:
                graph.add_edge(step, remove)
