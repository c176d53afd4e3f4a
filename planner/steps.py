"""What each step does on its host: one handler per StepKind, in a table checked
complete at import (planner.apply), and the generic handlers (images, containers, secrets).

Serving's handlers (gateway, watcher, rolling replace) register from planner.serving.steps.
A handler runs in a worker thread, records what it did through the Recorder, and returns
a short detail for the event that says it finished.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from planner.events import Emit, Event
from planner.graph import Step, StepKind
from planner.plan import Action, Change
from planner.recorder import Recorder
from planner.attributes import CONTAINER, ChangeClass
from planner.resources import container_spec, image_labels, reach_port, secret_parts
from providers.base import Provider
from providers.readiness import wait_ready
from state.address import Address
from state.model import ResourceState

if TYPE_CHECKING:
    import networkx as nx

    from planner.secrets import SecretValues

K = StepKind
T = TypeVar("T")


@dataclass
class StepContext:
    """What every handler of one apply shares."""

    stack: str
    graph: nx.DiGraph
    providers: dict[str, Provider]
    recorder: Recorder
    stop: threading.Event
    emit: Emit
    secrets: SecretValues | None = None
    _local: dict[str, Any] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def local(self, key: str, make: Callable[[], T]) -> T:
        """Per-run state of a family of handlers (serving's routes and rolls), made once."""
        with self._guard:
            if key not in self._local:
                self._local[key] = make()
            return self._local[key]

    def progress(self, step: Step) -> Callable[..., None]:
        """progress(message), or progress(line, output=True) for a line of a build's own
        output (the event's detail says "output": a view may keep only the last ones)."""
        return lambda message, output=False: self.emit(
            Event("progress", step, message=message, detail="output" if output else ""))

    def record(self, change: Change, address: Address, id: str, status: str = "ready",
               attributes: dict[str, Any] | None = None) -> None:
        self.recorder.put(ResourceState(address=change.address, type=change.type, host=address.host,
                                        id=id, status=status, attributes=attributes or change.after or {}))

    def secret_env(self, after: dict[str, Any]) -> dict[str, str]:
        from providers.types import ProviderError

        wanted = after.get("secret_env") or {}
        if not wanted:
            return {}
        assert self.secrets is not None, "secret_env without secret values"
        env = {}
        for var, name in wanted.items():
            value = self.secrets.value(name)
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            if not text or "\0" in text:
                raise ProviderError(f"secret {name} is not text and cannot be passed in environment variable {var}")
            env[var] = text
        return env

    def run(self, step: Step) -> str:
        changes: list[Change] = self.graph.nodes[step]["changes"]
        address = step.address
        return handler_for(step, changes)(self, step, address, self.providers[address.host], changes)


Handler = Callable[[StepContext, Step, Address, Provider, list[Change]], str]
# By step kind; (kind, action) where one kind runs differently for one action (a
# rolling replace's wait, planner.serving.steps).
HANDLERS: dict[tuple[StepKind, Action | None], Handler] = {}


def handles(kind: StepKind, action: Action | None = None) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        assert (kind, action) not in HANDLERS, f"two handlers for {kind} {action or ''}"
        HANDLERS[(kind, action)] = handler
        return handler

    return register


def handler_for(step: Step, changes: list[Change]) -> Handler:
    return HANDLERS.get((step.kind, changes[0].action)) or HANDLERS[(step.kind, None)]


def check_complete() -> None:
    missing = [kind.value for kind in StepKind if (kind, None) not in HANDLERS]
    assert not missing, f"step kinds without a handler: {', '.join(missing)}"


# Images
@handles(K.BUILD)
def build(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from providers.types import BuildOptions

    after = changes[0].after
    options = BuildOptions(name=address.app or "", secrets=_build_secrets(ctx, after),
                           target=after.get("target"), cache_from=tuple(after.get("cache_from") or ()),
                           on_host=after.get("build_on") == "host")
    image_id = provider.build_image(
        after["context"], after["dockerfile"], after["args"], after["tag"],
        image_labels(ctx.stack, after["content_hash"]), ctx.progress(step), options,
    )
    if provider.builds_here or options.on_host:  # elsewhere the image is recorded once delivered
        ctx.record(changes[0], address, image_id)
    return f"id={image_id[7:19]}"


def _build_secrets(ctx: StepContext, after: dict[str, Any]) -> dict[str, bytes]:
    """build.secrets: each named secret's value, for the build alone (never recorded)."""
    names = after.get("build_secrets") or ()
    if not names:
        return {}
    assert ctx.secrets is not None, "build secrets without secret values"
    return {name: ctx.secrets.value(name) for name in names}


@handles(K.DELIVER)
def deliver(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    tag = changes[0].after["tag"]
    image_id = provider.receive_image(tag, tag, ctx.progress(step))
    ctx.record(changes[0], address, image_id)
    return f"id={image_id[7:19]}"


@handles(K.PULL)
def pull(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    image_id = provider.ensure_image(changes[0].after["ref"], ctx.progress(step))
    ctx.record(changes[0], address, image_id)
    return f"id={image_id[7:19]}"


@handles(K.TAG)
def tag(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    provider.tag_image(changes[0].ids[0], changes[0].after["tag"])
    ctx.record(changes[0], address, changes[0].ids[0])
    return changes[0].after["tag"]


@handles(K.PRUNE_IMAGE)
def prune_image(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    for ref in changes[0].ids:
        provider.remove_image(ref)
    return f"untagged {', '.join(changes[0].ids)}"


@handles(K.REMOVE_IMAGE)
def remove_image(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    for ref in [ref for change in changes for ref in change.ids]:
        provider.remove_image(ref)
    ctx.recorder.drop(step.address)
    return ""


# Containers
@handles(K.REMOVE)
def remove(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    ids = [i for change in changes for i in change.ids]
    for container_id in ids:
        provider.remove_container(container_id)
    ctx.recorder.drop(step.address, ids)
    return ""


@handles(K.CREATE)
def create(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    after = changes[0].after
    spec = container_spec(ctx.stack, address, after, ctx.secret_env(after))
    container_id = provider.run_container(spec)
    attrs = published(provider, container_id, after)
    ctx.record(changes[0], address, container_id, status="created", attributes=attrs)
    return f"id={container_id[:12]}" + (f", port {attrs['published_port']}" if after["host_port"] is None else "")


@handles(K.CREATE, Action.REPLACE)
def replace(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """The new container is created (under a name of its own) before the old one stops,
    so a config Docker refuses leaves the old one serving. On a free port it starts
    beside the old one; on a fixed host port (or host network, or GPUs) the old one
    stops first and, if the new one then fails to start, is started again. Once the new
    one runs the old one is removed and the new one takes its name; state records the
    container that runs at each point, so a run that dies midway leaves the other one
    as a duplicate the next plan removes."""
    import secrets

    from providers.types import ProviderError

    change = changes[0]
    after = change.after
    # (A replace whose old container a remove step of its own took out: planner.graph._split_swaps.)
    old_ids = [] if ctx.graph.nodes[step].get("split") else [i for i in change.ids if i]
    staged = after | {"name": f"{after['name']}-next-{secrets.token_hex(3)}"}
    spec = container_spec(ctx.stack, address, staged, ctx.secret_env(after))
    if after["host_port"] is None and spec.network_mode != "host" and not spec.gpus:
        container_id = provider.run_container(spec)  # refused: the old one is untouched
        attrs = published(provider, container_id, staged)
    else:
        container_id = provider.create_container(spec)  # refused: the old one is untouched
        attrs = staged
        stopped: list[str] = []
        try:
            for old in old_ids:
                provider.stop_container(old)
                stopped.append(old)
            provider.start_container(container_id, spec)
        except ProviderError as err:
            raise ProviderError(f"{err}; {_restore(provider, container_id, stopped)}") from None
    ctx.record(change, address, container_id, status="created", attributes=attrs)
    for old in old_ids:
        provider.remove_container(old)
    provider.update_container(container_id, container_spec(ctx.stack, address, after))  # its name
    ctx.record(change, address, container_id, status="created", attributes=attrs | {"name": after["name"]})
    replaced = f", replacing {old_ids[0][:12]}" if old_ids else ""
    return f"id={container_id[:12]}" + (f", port {attrs['published_port']}" if after["host_port"] is None else "") + replaced


def _restore(provider: Provider, new_id: str, stopped: list[str]) -> str:
    """The new container could not start: remove it and start the old ones again."""
    from providers.types import ProviderError

    try:
        provider.remove_container(new_id)
        removed = "the new container was removed"
    except ProviderError as err:  # a duplicate at the address: the next plan removes it
        removed = f"the new container could not be removed ({err})"
    if not stopped:
        return f"{removed}; the old container keeps serving"
    try:
        for old in stopped:
            provider.start_container(old)
    except ProviderError as err:
        return f"{removed}; the old container ({stopped[0][:12]}) could not be started again either: {err}"
    return f"{removed} and the old one ({stopped[0][:12]}) started again"


@handles(K.UPDATE)
def update(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    change = changes[0]
    container_id = change.ids[0]
    before = change.before or {}
    if CONTAINER.changed(before, change.after, ChangeClass.UPDATE):
        provider.update_container(container_id, container_spec(ctx.stack, address, change.after))
    prev = ctx.recorder.get(step.address)
    known = prev is not None and prev.id == container_id
    status = prev.status if known else "created"
    restart = known and bool(CONTAINER.changed(before, change.after, ChangeClass.RESTART))
    if restart:  # a secret it mounts was rewritten: the restart mounts the new file
        provider.restart_container(container_id)
        status = "created"  # ready again once the wait step's probe passes
    ctx.record(change, address, container_id, status=status)
    return f"{'restarted, ' if restart else ''}id={container_id[:12]}"


def probe(ctx: StepContext, step: Step, provider: Provider, after: dict[str, Any], resource: ResourceState) -> float:
    """Wait until resource's container passes the readiness of after; ProviderError if not."""
    target = after["readiness"] or "TCP"
    port = reach_port(resource.attributes)
    ctx.emit(Event("waiting", step, 0.0, message=f"waiting for readiness ({target} on port {port})"))
    return wait_ready(
        provider, resource.id, port, after["readiness"], after["readiness_timeout"],
        ctx.stop, on_wait=lambda elapsed, seen: ctx.emit(Event("waiting", step, elapsed, message=seen)),
    )


@handles(K.WAIT)
def wait(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """Ready once the probe passes. When it fails the container is stopped (a server
    crash-looping under its restart policy would hold its GPUs and port) and kept in
    state as tainted: `status` shows it failed, the next apply replaces it."""
    from providers.types import ProviderError, ReadinessError

    resource = ctx.recorder.get(step.address)
    assert resource is not None, f"{step.address} has no container to wait for"
    try:
        took = probe(ctx, step, provider, changes[0].after, resource)
    except ReadinessError as err:
        ctx.recorder.put(resource.model_copy(update={"status": "tainted"}))
        try:
            provider.stop_container(resource.id)
            kept = "the container was stopped; the next apply replaces it"
        except ProviderError as stop_err:
            kept = f"it could not be stopped: {stop_err}"
        raise ReadinessError(f"{err}; {kept}", err.log_tail) from None
    ctx.recorder.put(resource.model_copy(update={"status": "ready"}))
    return f"probe passed after {took:.2f}s"


def published(provider: Provider, container_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """attrs, with the free host port berth picked for a replica that has no fixed one."""
    from providers.types import ProviderError

    if attrs["host_port"] is not None:
        return attrs
    info = provider.inspect_container(container_id) or {}
    bindings = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{attrs['port']}/tcp") or []
    ports = [int(b["HostPort"]) for b in bindings if b.get("HostPort")]
    if not ports:
        raise ProviderError(f"{attrs['name']}: Docker published port {attrs['port']} on no host port")
    return attrs | {"published_port": ports[0]}


# Secrets
@handles(K.SYNC_SECRET)
def sync_secret(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from providers.types import ProviderError

    change = changes[0]
    assert ctx.secrets is not None, "a secret step without secret values"
    value = ctx.secrets.value(address.secret)
    if ctx.secrets.digest(address.secret) != change.after["value"]:
        raise ProviderError(f"secret {address.secret} has a different value than when the plan was made; "
                            "run berth plan again")
    path = provider.write_secret(secret_parts(ctx.stack, address.app, address.secret), value)
    ctx.record(change, address, path)
    return path


@handles(K.REMOVE_SECRET)
def remove_secret(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    provider.remove_secret(secret_parts(ctx.stack, address.app, address.secret))
    ctx.recorder.drop(step.address)
    return ""
