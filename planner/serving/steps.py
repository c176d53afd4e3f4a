"""Apply's steps for serving: the gateway (image, start, routes, remove), the liveness
watcher (planner.serving.watcher_steps), and the rolling replace of a routed replica.

They register into planner.steps' handler table; planner.apply imports this module so
that the table is complete. A rolling replace is roll-start, its own wait, roll-switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.graph import Step, StepKind
from planner.plan import Action, Change
from planner.resources import container_spec, reach_port
from planner.serving.routes import LiveRoutes, read_ca, write_keys
from planner.serving.routes import compose as _compose
from planner.steps import StepContext, handles, probe, published, remove
from providers.base import Provider
from providers.types import LABEL_CONFIG_HASH
from state.address import Address
from state.model import ResourceState

K = StepKind


@dataclass
class _Serving:
    """One apply's serving state: the gateway's live routes, and the old replica of each
    address while its rolling replace runs."""

    routes: LiveRoutes
    rolls: dict[Address, ResourceState] = field(default_factory=dict)


def _serving(ctx: StepContext) -> _Serving:
    return ctx.local("serving", lambda: _Serving(LiveRoutes(ctx.recorder, ctx.stack)))


# The gateway
@handles(K.GATEWAY_IMAGE)
@handles(K.WATCHER_IMAGE)  # the watcher runs the gateway's image
def gateway_image(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """Built on the local engine (once: the content hash names it), then sent to an
    SSH host as apps' images are."""
    import tempfile
    from pathlib import Path

    from planner.serving import gateway

    tag = gateway.image_tag()
    with tempfile.TemporaryDirectory(prefix="berth-gateway-") as context:
        Path(context, "Dockerfile").write_text(gateway.DOCKERFILE)
        image_id = provider.build_image(context, "Dockerfile", {}, tag, gateway.image_labels(), ctx.progress(step))
    if not provider.builds_here:
        image_id = provider.receive_image(tag, tag, ctx.progress(step))
    return f"id={image_id[7:19]}"


@handles(K.GATEWAY_START)
def gateway_start(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from dataclasses import replace

    from planner.serving import gateway
    from providers.types import ProviderError

    spec = gateway.container_spec(ctx.stack, address, changes[0].after)
    # The host's gateway on this port may run already, another stack's: shared, not
    # started again. One of another config (an older berth's programs) is replaced: the
    # stacks' routes are on its volume, and the new one boots with them.
    running = provider.inspect_container(spec.name)
    if running is not None and (running.get("State") or {}).get("Running") \
            and ((running.get("Config") or {}).get("Labels") or {}).get(LABEL_CONFIG_HASH) == spec.labels[LABEL_CONFIG_HASH]:
        ctx.record(changes[0], address, running["Id"], status="created")
        return f"id={running['Id'][:12]} (shared, already running)"
    try:
        container_id = provider.run_container(spec)
    except ProviderError as err:
        if gateway.MIGRATE_REQ.rsplit(".", 1)[1] not in str(err):
            raise
        # A kernel without it (before Linux 5.14): the gateway still works; a request
        # may rarely be reset while its routes are reloaded.
        ctx.progress(step)(f"{address.host}'s kernel has no {gateway.MIGRATE_REQ} (Linux 5.14+): "
                           "a request may rarely be reset while the gateway's routes are reloaded")
        container_id = provider.run_container(replace(spec, sysctls={}))
    ctx.record(changes[0], address, container_id, status="created")
    return f"id={container_id[:12]}"


@handles(K.GATEWAY_ROUTES)
def gateway_routes(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """The whole config, with the ports of the replicas state holds as ready, to
    Caddy's admin API: it swaps to it without dropping connections. Retried while a
    just-started gateway boots."""
    import time

    from providers.types import ProviderError

    change = changes[0]
    routes = _serving(ctx).routes
    resource = ctx.recorder.get(step.address)
    container_id = resource.id if resource is not None and resource.id else change.ids[0]
    keys = None
    from planner.serving import gateway

    if change.after.get("api_keys"):  # read before the gateway is asked anything: a failing source stops here
        assert ctx.secrets is not None, "API keys without secret values"
        keys = gateway.keys_file([ctx.secrets.value(name) for name in change.after["api_keys"]])
    tls = change.after.get("tls") or {}
    tls_files = {}
    if tls.get("mode") == "secrets":
        assert ctx.secrets is not None, "TLS secrets without secret values"
        cert, key = gateway.tls_files(ctx.stack)
        tls_files = {cert: ctx.secrets.value(tls["cert"]), key: ctx.secrets.value(tls["key"])}
    deadline = time.monotonic() + 30
    while True:
        try:
            if keys is not None:
                write_keys(provider, container_id, keys, gateway.keys_file_path(ctx.stack))
            for path, value in tls_files.items():
                write_keys(provider, container_id, value, path)
            upstreams = routes.load(provider, address.host, container_id, change.after)
            break
        except OSError as err:
            # Another stack's first apply, at the same moment, may have started the shared
            # gateway in place of this one's: its routes go there instead.
            shared = provider.inspect_container(change.after["name"])
            if shared is not None and shared["Id"] != container_id and (shared.get("State") or {}).get("Running"):
                container_id = shared["Id"]
                continue
            if time.monotonic() > deadline or ctx.stop.is_set():
                ctx.record(change, address, container_id, status="tainted")
                raise ProviderError(f"gateway on {address.host}: its admin API did not answer: {err}\n"
                                    f"{provider.logs(container_id, 20)}".rstrip()) from None
            time.sleep(0.2)
        except ProviderError:
            ctx.record(change, address, container_id, status="tainted")
            raise
    recorded = change.after | {"upstreams": upstreams}
    if tls.get("mode") == "internal":
        try:
            recorded["ca_root"] = read_ca(provider, container_id)
        except ProviderError:
            ctx.record(change, address, container_id, status="tainted")
            raise
    ctx.record(change, address, container_id, attributes=recorded)
    others = routes.sharing.get(address.host) or []
    return f"{len(change.after['routes'])} app(s) routed on port {change.after['port']}" + (
        " (HTTPS)" if change.after.get("tls") else "") + (
        f", a gateway shared with stack {', '.join(others)}" if others else "")


@handles(K.GATEWAY_REMOVE)
def gateway_remove(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """Deleted: the stack's routes leave the shared gateway, which the last stack out
    removes (its volume stays: the CA of tls = "internal" with it). Replaced, or a
    gateway of one stack alone (berth before the shared one): the container goes; a
    shared one's routes stay on its volume for the new container."""
    from planner.serving import gateway

    change = changes[0]
    name = (change.before or {}).get("name", "")
    if change.action is not Action.DELETE or not gateway.is_shared(name):
        return remove(ctx, step, address, provider, changes)
    left: list[str] = []
    for container_id in change.ids:
        if provider.inspect_container(container_id) is None:
            continue
        try:
            left = _compose(provider, container_id, ["drop", ctx.stack])["stacks"]
        except OSError as err:
            from providers.types import ProviderError

            raise ProviderError(f"gateway on {address.host}: cannot take this stack's routes out: {err}") from None
        if not left:
            provider.remove_container(container_id)
    ctx.recorder.drop(step.address)  # by name or by ID: this stack's part of the gateway is gone either way
    return f"routes removed; the gateway serves on for {', '.join(left)}" if left else "last stack out: gateway removed"


# The liveness watcher
@handles(K.WATCHER_START)
def watcher_start(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from planner.serving import watcher_steps

    return watcher_steps.start(ctx.stack, address, changes[0].after, provider, ctx.stop,
                               lambda container_id, status: ctx.record(changes[0], address, container_id, status))


@handles(K.WATCHER_REMOVE)
def watcher_remove(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    from planner.serving import watcher_steps

    ids = [i for change in changes for i in change.ids]
    watcher_steps.remove(provider, ids)
    ctx.recorder.drop(step.address, ids)
    return ""


# Rolling replace: roll-start, wait (below), roll-switch (planner.graph.ROLLING)
@handles(K.ROLL_START)
def roll_start(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """The new replica starts beside the old one, under a name of its own and on a
    free port berth picks; state records it as the address's container from now on, so
    a run that dies here leaves the old one as a duplicate the next plan removes.
    The old one stays in the gateway's routes until roll-switch."""
    import secrets

    serving = _serving(ctx)
    change = changes[0]
    old = ctx.recorder.get(step.address)
    if old is None or old.id not in change.ids:  # on the host but not in state (adopted)
        old = ResourceState(address=change.address, type="container", host=address.host,
                            id=change.ids[0], status="ready", attributes=change.before or {})
    serving.rolls[step.address] = old
    serving.routes.hold(address.host, address.app, reach_port(old.attributes))
    after = ctx.with_weights(address, change.after)
    after = after | {"name": f"{after['name']}-next-{secrets.token_hex(3)}"}
    try:
        container_id = provider.run_container(ctx.spec(provider, address, after))
    except BaseException:
        serving.rolls.pop(step.address)
        serving.routes.release(address.host, address.app, reach_port(old.attributes))
        raise
    attrs = published(provider, container_id, after)
    ctx.record(change, address, container_id, status="created", attributes=attrs)
    return f"id={container_id[:12]} on port {attrs['published_port']}, beside {old.id[:12]}"


@handles(K.WAIT, Action.CREATE_THEN_DELETE)
def roll_wait(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """The new replica's readiness; when it fails, the roll is undone (_roll_back) and
    the old replica serves on, untainted."""
    from providers.types import ProviderError, ReadinessError

    if step.address not in _serving(ctx).rolls:  # roll-start never ran (a wait for a replica as it is)
        from planner.steps import wait

        return wait(ctx, step, address, provider, changes)
    resource = ctx.recorder.get(step.address)
    assert resource is not None, f"{step.address} has no container to wait for"
    try:
        took = probe(ctx, step, provider, changes[0].after, resource)
    except ProviderError as err:
        kept = _roll_back(ctx, step, address, provider)
        raise type(err)(f"{err}; {kept}", getattr(err, "log_tail", "")) if isinstance(err, ReadinessError) \
            else ProviderError(f"{err}; {kept}") from None
    ctx.recorder.put(resource.model_copy(update={"status": "ready"}))
    return f"probe passed after {took:.2f}s"


def _roll_back(ctx: StepContext, step: Step, address: Address, provider: Provider) -> str:
    """The new replica never became ready: remove it and put the old one back in
    state; the old one never left the routes."""
    serving = _serving(ctx)
    old = serving.rolls.pop(step.address)
    new = ctx.recorder.get(step.address)
    if new is not None and new.id != old.id:
        provider.remove_container(new.id)
    ctx.recorder.put(old)
    serving.routes.release(address.host, address.app, reach_port(old.attributes))
    return f"the new container was removed; the old one ({old.id[:12]}) keeps serving"


@handles(K.ROLL_SWITCH)
def roll_switch(ctx: StepContext, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
    """Route to the new replica beside the old one, then take the old one out of the
    routes, wait for its requests in flight, stop it, and give the new one its name."""
    serving = _serving(ctx)
    routes = serving.routes
    change = changes[0]
    old = serving.rolls.pop(step.address)
    old_port = reach_port(old.attributes)
    progress = ctx.progress(step)
    routed = routes.push(provider, address.host)  # the new one is ready in state: both serve
    routes.release(address.host, address.app, old_port, draining=routed)
    if routed:
        progress("routed to the new replica; draining the old one")
        routes.push(provider, address.host)
        timeout = routes.drain_timeout(address.host)
        left = routes.drain(provider, address.host, old_port, timeout) if old_port is not None else 0
        if left:
            progress(f"{left} request(s) still in flight to the old replica after draining; stopping it")
    provider.remove_container(old.id)
    if routed:
        routes.drained(address.host, old_port)
        routes.push(provider, address.host)
    new = ctx.recorder.get(step.address)
    assert new is not None, f"{step.address}: no new replica in state"
    provider.update_container(new.id, container_spec(ctx.stack, address, change.after))  # its name back
    ctx.recorder.put(new.model_copy(update={"attributes": new.attributes | {"name": change.after["name"]}}))
    return f"old replica {old.id[:12]} {'drained and ' if routed else ''}stopped"
