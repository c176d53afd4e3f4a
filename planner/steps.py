"""What each step does on its host: one handler per StepKind, in a table checked
complete at import (planner.apply), and the generic handlers (images, containers, secrets).

Serving's handlers (gateway, watcher, rolling replace) register from planner.serving.steps.
A handler runs in a worker thread, records what it did through the Recorder, and returns
a short detail for the event that says it finished.
"""

from __future__ import annotations

import dataclasses
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
from providers.types import ContainerSpec
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

    def with_weights(self, address: Address, after: dict[str, Any]) -> dict[str, Any]:
        """after, with the cache key of each weights mount that was known only once its
        weights step ran (recorded by it: planner.weights.steps)."""
        from providers.types import ProviderError

        mounts = after.get("weights") or []
        if all(m.get("key") for m in mounts):
            return after
        filled = []
        for index, mount in enumerate(mounts):
            if not mount.get("key"):
                recorded = self.recorder.get(Address.weights(address.app, index, address.host))
                if recorded is None or not recorded.id:
                    raise ProviderError(f"{address}: the weights for {mount['mount']} were not fetched")
                mount = mount | {"key": recorded.id}
            filled.append(mount)
        return after | {"weights": filled}

    def spec(self, provider: Provider, address: Address, after: dict[str, Any]) -> ContainerSpec:
        """The container spec of after, its secret env read and its weights mounted."""
        root = provider.weights_cache if after.get("weights") else None
        return container_spec(self.stack, address, after, self.secret_env(after), root)

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
    after = ctx.with_weights(address, changes[0].after)
    spec = ctx.spec(provider, address, after)
    container_id = provider.run_container(spec)
    attrs = published(provider, container_id, after)
    ctx.record(changes[0], address, container_id, status="created", attributes=attrs)
    return f"id={container_id[:12]}" + (f", port {attrs['published_port']}" if after["host_port"] is None else "")


@handles(K.CREATE, Action.REPLACE)
def replace(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """The new container is created (under a name of its own) before the old one stops,
    so a config Docker refuses leaves the old one serving. It starts beside the old one
    when nothing they hold clashes (start_first); on a fixed host port (or host network,
    or the same GPUs) the old one is stopped first, kept, and started again if the new
    one does not start. Either way the old one is removed only once the new one passed
    readiness (the wait step, replace_wait). State records the container that runs at
    each point, so a run that dies midway leaves the other one as a duplicate at the
    address, which the next plan removes."""
    import secrets

    from providers.types import ProviderError

    change = changes[0]
    after = ctx.with_weights(address, change.after)
    # (A replace whose old container a remove step of its own took out: planner.graph._split_swaps.)
    old_ids = [] if ctx.graph.nodes[step].get("split") else [i for i in change.ids if i]
    prior = ctx.recorder.get(step.address)
    staged = after | {"name": f"{after['name']}-next-{secrets.token_hex(3)}"}
    spec = ctx.spec(provider, address, staged)
    stopped: list[str] = []
    if start_first(after, change.before or {}, spec.network_mode):
        container_id = provider.run_container(spec)  # refused: the old one is untouched
        attrs = published(provider, container_id, staged)
    else:
        # On a port berth picks (a GPU app behind the gateway) the new one takes the old
        # one's, free once it stops: a port written into the config stays at every restart
        # (a Docker-picked one would not), and the gateway's routes stay as they are.
        port = (change.before or {}).get("published_port") if after["host_port"] is None else None
        if port and spec.network_mode != "host":
            spec = dataclasses.replace(spec, host_port=port)
        container_id = provider.create_container(spec)  # refused: the old one is untouched
        attrs = staged
        # A tainted old container failed its readiness: it is not started again.
        again = not (prior is not None and prior.status == "tainted")
        try:
            for old in old_ids:
                provider.stop_container(old)
                if again:
                    stopped.append(old)
            provider.start_container(container_id, spec)
            attrs = published(provider, container_id, staged)  # a GPU app on a free port: the one it got
        except ProviderError as err:
            raise ProviderError(f"{err}; {_restore(provider, container_id, stopped)}") from None
    if old_ids:
        ctx.local("deposed", dict)[step.address] = Deposed(old_ids, stopped, prior)
    ctx.record(change, address, container_id, status="created", attributes=attrs)
    kept = f", {old_ids[0][:12]} kept {'stopped' if stopped else 'running'} until it is ready" if old_ids else ""
    return f"id={container_id[:12]}" + (f", port {attrs['published_port']}" if after["host_port"] is None else "") + kept


@dataclass
class Deposed:
    """The containers a replace's new one takes over from, kept until it is ready:
    old_ids (stopped ones among them: `stopped`, started again should it fail) and the
    state record they had."""

    old_ids: list[str]
    stopped: list[str]
    prior: ResourceState | None


def start_first(after: dict[str, Any], before: dict[str, Any], network_mode: str | None) -> bool:
    """Whether the new container can run beside the old one: no fixed host port, not on
    the host's network, and no GPU the old one holds (planner.placement gives a GPU
    replica free devices for its replace when the host has them)."""
    if after["host_port"] is not None or network_mode == "host":
        return False
    return not set(after.get("gpus") or ()) & set(before.get("gpus") or ())


@handles(K.WAIT, Action.REPLACE)
def replace_wait(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """A replace's new container passed readiness: the old one is removed and the new
    one takes its name. It did not (or stopped): the new one is removed, the old one
    started again and recorded as before, and the error keeps the new one's log."""
    from providers.types import Interrupted, ProviderError, ReadinessError

    deposed: Deposed | None = ctx.local("deposed", dict).pop(step.address, None)
    if deposed is None:  # a split replace (its old container already gone): an ordinary wait
        return wait(ctx, step, address, provider, changes)
    after = changes[0].after
    resource = ctx.recorder.get(step.address)
    assert resource is not None, f"{step.address} has no container to wait for"
    try:
        took = probe(ctx, step, provider, after, resource)
    except Interrupted:
        raise  # Ctrl-C: state holds the new one, the old one beside it; the next apply settles them
    except ProviderError as err:
        undone = _restore(provider, resource.id, deposed.stopped)
        if deposed.prior is not None:
            ctx.recorder.put(deposed.prior)
        else:
            ctx.recorder.drop(step.address, [resource.id])
        raise ReadinessError(f"{err}; {undone}", getattr(err, "log_tail", "")) from None
    for old in deposed.old_ids:
        provider.remove_container(old)
    provider.update_container(resource.id, container_spec(ctx.stack, address, after))  # its name
    ctx.recorder.put(resource.model_copy(update={"status": "ready",
                                                 "attributes": resource.attributes | {"name": after["name"]}}))
    return f"probe passed after {took:.2f}s; replaced {deposed.old_ids[0][:12]}"


def _restore(provider: Provider, new_id: str, stopped: list[str]) -> str:
    """The new container could not start or never got ready: remove it and start the
    old ones again."""
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
        ctx.stop, on_wait=lambda elapsed, seen, left: ctx.emit(Event("waiting", step, elapsed, message=seen, left=left)),
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


# Volumes
@handles(K.CREATE_VOLUME)
def create_volume(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from planner.resources import volume_labels

    name = provider.create_volume(changes[0].after["name"], volume_labels(ctx.stack, address))
    ctx.record(changes[0], address, name)
    return name


@handles(K.REMOVE_VOLUME)
def remove_volume(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    for name in [i for change in changes for i in change.ids]:
        provider.remove_volume(name)
    ctx.recorder.drop(step.address)
    return ""
