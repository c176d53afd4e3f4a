"""Apply: walk a plan's step graph against the providers, writing state as steps finish.

Each finished step is recorded in state and written to the store at once, so a run
that dies at any point leaves a state the next plan converges from: a container is
recorded as `created` the moment it exists, `ready` once its probe passed, `tainted`
if the probe failed.

Secret values come from a SecretValues (read from their sources, in memory) and go only
to the host's secret file or a container's secret env; every event message passes
through its redact(), so a container log quoting a value is not shown with it.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from planner.events import Emit, Event
from planner.graph import Step, build_graph
from planner.plan import Action, Change, Plan
from planner.resources import RESTART_KEYS, UPDATE_KEYS, container_spec, image_labels, reach_port, secret_parts
from planner.serving.routing import LiveRoutes
from planner.walk import Outcome, Status, WalkEvent, walk
from providers.base import Provider
from providers.readiness import wait_ready
from state.address import Address
from state.model import ResourceState, State
from state.store import StateStore

if TYPE_CHECKING:
    from planner.secrets import SecretValues


class Recorder:
    """The state as the run changes it. Every change is written through to the store
    under one lock, so worker threads never interleave half-made states."""

    def __init__(self, store: StateStore, state: State, note: str, config: dict[str, Any] | None = None) -> None:
        self.store = store
        self.state = state
        self.note = note
        self.config = config  # the desired configuration this run applies, recorded with each write
        self._lock = threading.Lock()

    def get(self, address: str) -> ResourceState | None:
        with self._lock:
            return self.state.resources.get(address)

    def put(self, resource: ResourceState) -> None:
        with self._lock:
            if self.state.resources.get(resource.address) == resource:
                return
            resources = dict(self.state.resources) | {resource.address: resource}
            self._write(resources)

    def drop(self, address: str, ids: list[str] | None = None) -> None:
        """Forget address; with ids, only if state holds one of them (a duplicate
        container removed under the same address must not drop the real one)."""
        with self._lock:
            current = self.state.resources.get(address)
            if current is None or (ids is not None and current.id not in ids):
                return
            resources = {k: v for k, v in self.state.resources.items() if k != address}
            self._write(resources)

    def record_config(self) -> None:
        """Write a state version naming this run's configuration if the last one recorded
        differs, so that an apply which changed nothing on the hosts (probes, fields only
        berth reads) still leaves its configuration for `rollback`."""
        from planner.recorded import record_digest

        if self.config is None:
            return
        with self._lock:
            if self.store.latest_config() != record_digest(self.config):
                self._write(dict(self.state.resources))

    def _write(self, resources: dict[str, ResourceState]) -> None:
        self.state = self.store.write(self.state.model_copy(update={"resources": resources}),
                                      note=self.note, config=self.config)


@dataclass
class ApplyResult:
    state: State
    outcomes: dict[Step, Outcome] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)  # per address, as planned
    interrupted: bool = False

    @property
    def failed(self) -> list[tuple[Step, Outcome]]:
        return [(s, o) for s, o in self.outcomes.items() if o.status is Status.FAILED]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(o.status is Status.OK for o in self.outcomes.values())

    def counts(self) -> dict[str, int]:
        """Terraform's closing line, counting only changes whose every step finished."""
        done = {address: True for address in self.actions}
        for step, outcome in self.outcomes.items():
            done[step.address] = done[step.address] and outcome.status is Status.OK
        counts = {"added": 0, "changed": 0, "destroyed": 0}
        for address, action in self.actions.items():
            if not done[address]:
                continue
            counts["added"] += action is Action.CREATE or action.is_replace
            counts["destroyed"] += action is Action.DELETE or action.is_replace
            counts["changed"] += action is Action.UPDATE
        return counts


def refresh_state(plan: Plan, recorder: Recorder) -> None:
    """Record what the plan found without acting: adopted IDs, forgotten resources."""
    for change in plan.changes:
        if change.action is not Action.NOOP:
            continue
        if change.after is None:
            recorder.drop(change.address)
            continue
        prev = recorder.get(change.address)
        recorder.put(ResourceState(
            address=change.address, type=change.type, host=Address.parse(change.address).host,
            id=change.ids[0] if change.ids else (prev.id if prev else ""),
            status=prev.status if prev else "ready", attributes=change.after,
        ))


def apply_plan(
    plan: Plan,
    store: StateStore,
    state: State,
    providers: dict[str, Provider],
    *,
    parallelism: int = 10,
    stop: threading.Event | None = None,
    emit: Emit,
    config: dict[str, Any] | None = None,
    note: str | None = None,
    secrets: SecretValues | None = None,
) -> ApplyResult:
    """secrets: the stack's secret values, needed when the plan writes a secret file or
    creates a container with secret_env; the digest of each value is checked against
    the plan's, so a value that changed since the plan was shown is not applied."""
    stop = stop or threading.Event()
    if secrets is not None:
        emit = _redacting(emit, secrets)
    recorder = Recorder(store, state.model_copy(update={"stack": plan.stack}),
                        note=note or ("destroy" if plan.destroy else "apply"), config=config)
    refresh_state(plan, recorder)
    graph = build_graph(plan)
    runner = _StepRunner(plan.stack, graph, providers, recorder, stop, emit, secrets)

    def on_walk_event(event: WalkEvent) -> None:
        outcome = event.outcome
        elapsed = outcome.elapsed if outcome else 0.0
        match event.kind:
            case "started":
                emit(Event("started", event.node))
            case "finished":
                emit(Event("finished", event.node, elapsed, message=outcome.value or ""))
            case "failed":
                err = outcome.error
                emit(Event("failed", event.node, elapsed, message=_message(err), detail=getattr(err, "log_tail", "")))
            case "skipped":
                kind = "not_started" if outcome.status is Status.NOT_STARTED else "skipped"
                emit(Event(kind, event.node, message=outcome.reason))

    result = walk(graph, runner.run, parallelism=parallelism, stop=stop, on_event=on_walk_event)
    recorder.record_config()
    return ApplyResult(
        state=recorder.state, outcomes=result.outcomes,
        actions={c.address: c.action for c in plan.actions},
        interrupted=result.interrupted or stop.is_set(),
    )


def _redacting(emit: Emit, secrets: SecretValues) -> Emit:
    def redacted(event: Event) -> None:
        emit(dataclasses.replace(event, message=secrets.redact(event.message), detail=secrets.redact(event.detail)))

    return redacted


def _message(err: BaseException | None) -> str:
    from providers.types import ProviderError

    if isinstance(err, ProviderError):
        return str(err)
    return f"internal error: {type(err).__name__}: {err}"


class _StepRunner:
    """Runs one step against its host and records what it did; returns a short detail."""

    def __init__(self, stack: str, graph: Any, providers: dict[str, Provider], recorder: Recorder,
                 stop: threading.Event, emit: Emit, secrets: SecretValues | None = None) -> None:
        self.stack = stack
        self.graph = graph
        self.providers = providers
        self.recorder = recorder
        self.stop = stop
        self.emit = emit
        self.secrets = secrets
        self.routes = LiveRoutes(recorder)
        self._rolls: dict[str, ResourceState] = {}  # address: the old replica, while a rolling replace runs

    def run(self, step: Step) -> str:
        changes: list[Change] = self.graph.nodes[step]["changes"]
        address = Address.parse(step.address)
        provider = self.providers[address.host]
        return getattr(self, "_" + step.kind.replace("-", "_"))(step, address, provider, changes)

    def _progress(self, step: Step):
        return lambda message: self.emit(Event("progress", step, message=message))

    def _record(self, change: Change, address: Address, id: str, status: str = "ready",
                attributes: dict[str, Any] | None = None) -> None:
        self.recorder.put(ResourceState(address=change.address, type=change.type, host=address.host,
                                        id=id, status=status, attributes=attributes or change.after or {}))

    # Images
    def _build(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        after = changes[0].after
        image_id = provider.build_image(
            after["context"], after["dockerfile"], after["args"], after["tag"],
            image_labels(self.stack, after["content_hash"]), self._progress(step),
        )
        if provider.builds_here:  # elsewhere the image is recorded once delivered
            self._record(changes[0], address, image_id)
        return f"id={image_id[7:19]}"

    def _deliver(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        tag = changes[0].after["tag"]
        image_id = provider.receive_image(tag, tag, self._progress(step))
        self._record(changes[0], address, image_id)
        return f"id={image_id[7:19]}"

    def _pull(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        image_id = provider.ensure_image(changes[0].after["ref"], self._progress(step))
        self._record(changes[0], address, image_id)
        return f"id={image_id[7:19]}"

    def _tag(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        provider.tag_image(changes[0].ids[0], changes[0].after["tag"])
        self._record(changes[0], address, changes[0].ids[0])
        return changes[0].after["tag"]

    def _prune_image(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        for ref in changes[0].ids:
            provider.remove_image(ref)
        return f"untagged {', '.join(changes[0].ids)}"

    def _remove_image(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        for ref in [ref for change in changes for ref in change.ids]:
            provider.remove_image(ref)
        self.recorder.drop(step.address)
        return ""

    # Containers
    def _remove(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        ids = [i for change in changes for i in change.ids]
        for container_id in ids:
            provider.remove_container(container_id)
        self.recorder.drop(step.address, ids)
        return ""

    def _create(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        after = changes[0].after
        spec = container_spec(self.stack, address, after, self._secret_env(after))
        container_id = provider.run_container(spec)
        attrs = _published(provider, container_id, after)
        self._record(changes[0], address, container_id, status="created", attributes=attrs)
        return f"id={container_id[:12]}" + (f", port {attrs['published_port']}" if after["host_port"] is None else "")

    # Rolling replace
    def _roll_start(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        """The new replica starts beside the old one, under a name of its own and on a
        free port berth picks; state records it as the address's container from now on, so
        a run that dies here leaves the old one as a duplicate the next plan removes.
        The old one stays in the gateway's routes until roll-switch."""
        import secrets

        change = changes[0]
        old = self.recorder.get(step.address)
        if old is None or old.id not in change.ids:  # on the host but not in state (adopted)
            old = ResourceState(address=change.address, type="container", host=address.host,
                                id=change.ids[0], status="ready", attributes=change.before or {})
        self._rolls[step.address] = old
        self.routes.hold(address.host, address.app, reach_port(old.attributes))
        after = change.after | {"name": f"{change.after['name']}-next-{secrets.token_hex(3)}"}
        try:
            container_id = provider.run_container(container_spec(self.stack, address, after, self._secret_env(after)))
        except BaseException:
            self._rolls.pop(step.address)
            self.routes.release(address.host, address.app, reach_port(old.attributes))
            raise
        attrs = _published(provider, container_id, after)
        self._record(change, address, container_id, status="created", attributes=attrs)
        return f"id={container_id[:12]} on port {attrs['published_port']}, beside {old.id[:12]}"

    def _roll_back(self, step: Step, address: Address, provider: Provider) -> str:
        """The new replica never became ready: remove it and put the old one back in
        state; the old one never left the routes."""
        old = self._rolls.pop(step.address)
        new = self.recorder.get(step.address)
        if new is not None and new.id != old.id:
            provider.remove_container(new.id)
        self.recorder.put(old)
        self.routes.release(address.host, address.app, reach_port(old.attributes))
        return f"the new container was removed; the old one ({old.id[:12]}) keeps serving"

    def _roll_switch(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        """Route to the new replica beside the old one, then take the old one out of the
        routes, wait for its requests in flight, stop it, and give the new one its name."""
        change = changes[0]
        old = self._rolls.pop(step.address)
        old_port = reach_port(old.attributes)
        progress = self._progress(step)
        routed = self.routes.push(provider, address.host)  # the new one is ready in state: both serve
        self.routes.release(address.host, address.app, old_port, draining=routed)
        if routed:
            progress("routed to the new replica; draining the old one")
            self.routes.push(provider, address.host)
            left = self.routes.drain(provider, address.host, old_port) if old_port is not None else 0
            if left:
                progress(f"{left} request(s) still in flight to the old replica after draining; stopping it")
        provider.remove_container(old.id)
        if routed:
            self.routes.drained(address.host, old_port)
            self.routes.push(provider, address.host)
        new = self.recorder.get(step.address)
        assert new is not None, f"{step.address}: no new replica in state"
        provider.update_container(new.id, container_spec(self.stack, address, change.after))  # its name back
        self.recorder.put(new.model_copy(update={"attributes": new.attributes | {"name": change.after["name"]}}))
        return f"old replica {old.id[:12]} {'drained and ' if routed else ''}stopped"

    def _update(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        change = changes[0]
        container_id = change.ids[0]
        before = change.before or {}
        if any(before.get(k) != change.after.get(k) for k in UPDATE_KEYS):
            provider.update_container(container_id, container_spec(self.stack, address, change.after))
        prev = self.recorder.get(step.address)
        known = prev is not None and prev.id == container_id
        status = prev.status if known else "created"
        restart = known and any(before.get(k) != change.after.get(k) for k in RESTART_KEYS)
        if restart:  # a secret it mounts was rewritten: the restart mounts the new file
            provider.restart_container(container_id)
            status = "created"  # ready again once the wait step's probe passes
        self._record(change, address, container_id, status=status)
        return f"{'restarted, ' if restart else ''}id={container_id[:12]}"

    def _secret_env(self, after: dict[str, Any]) -> dict[str, str]:
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

    # Secrets
    def _sync_secret(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        from providers.types import ProviderError

        change = changes[0]
        assert self.secrets is not None, "a secret step without secret values"
        value = self.secrets.value(address.secret)
        if self.secrets.digest(address.secret) != change.after["value"]:
            raise ProviderError(f"secret {address.secret} has a different value than when the plan was made; "
                                "run berth plan again")
        path = provider.write_secret(secret_parts(self.stack, address.app, address.secret), value)
        self._record(change, address, path)
        return path

    def _remove_secret(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        provider.remove_secret(secret_parts(self.stack, address.app, address.secret))
        self.recorder.drop(step.address)
        return ""

    # The gateway
    def _gateway_image(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        """Built on the local engine (once: the content hash names it), then sent to an
        SSH host as apps' images are."""
        import tempfile
        from pathlib import Path

        from planner.serving import gateway

        tag = gateway.image_tag()
        with tempfile.TemporaryDirectory(prefix="berth-gateway-") as context:
            Path(context, "Dockerfile").write_text(gateway.DOCKERFILE)
            image_id = provider.build_image(context, "Dockerfile", {}, tag, gateway.image_labels(), self._progress(step))
        if not provider.builds_here:
            image_id = provider.receive_image(tag, tag, self._progress(step))
        return f"id={image_id[7:19]}"

    def _gateway_start(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        from dataclasses import replace

        from planner.serving import gateway
        from providers.types import ProviderError

        spec = gateway.container_spec(self.stack, address, changes[0].after)
        try:
            container_id = provider.run_container(spec)
        except ProviderError as err:
            if gateway.MIGRATE_REQ.rsplit(".", 1)[1] not in str(err):
                raise
            # A kernel without it (before Linux 5.14): the gateway still works; a request
            # may rarely be reset while its routes are reloaded.
            self._progress(step)(f"{address.host}'s kernel has no {gateway.MIGRATE_REQ} (Linux 5.14+): "
                                 "a request may rarely be reset while the gateway's routes are reloaded")
            container_id = provider.run_container(replace(spec, sysctls={}))
        self._record(changes[0], address, container_id, status="created")
        return f"id={container_id[:12]}"

    def _gateway_routes(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        """The whole config, with the ports of the replicas state holds as ready, to
        Caddy's admin API: it swaps to it without dropping connections. Retried while a
        just-started gateway boots."""
        import time

        from providers.types import ProviderError

        change = changes[0]
        resource = self.recorder.get(step.address)
        container_id = resource.id if resource is not None and resource.id else change.ids[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                upstreams = self.routes.load(provider, address.host, container_id, change.after)
                break
            except OSError as err:
                if time.monotonic() > deadline or self.stop.is_set():
                    self._record(change, address, container_id, status="tainted")
                    raise ProviderError(f"gateway on {address.host}: its admin API did not answer: {err}\n"
                                        f"{provider.logs(container_id, 20)}".rstrip()) from None
                time.sleep(0.2)
            except ProviderError:
                self._record(change, address, container_id, status="tainted")
                raise
        self._record(change, address, container_id, attributes=change.after | {"upstreams": upstreams})
        return f"{len(change.after['routes'])} app(s) routed on port {change.after['port']}"

    def _gateway_remove(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        ids = [i for change in changes for i in change.ids]
        for container_id in ids:
            provider.remove_container(container_id)
        self.recorder.drop(step.address, ids)
        return ""

    # The liveness watcher (planner.serving.watcher_steps)
    def _watcher_image(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        return self._gateway_image(step, address, provider, changes)  # the watcher runs the gateway's image

    def _watcher_start(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        from planner.serving import watcher_steps

        return watcher_steps.start(self.stack, address, changes[0].after, provider, self.stop,
                                   lambda container_id, status: self._record(changes[0], address, container_id, status))

    def _watcher_remove(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        from planner.serving import watcher_steps

        ids = [i for change in changes for i in change.ids]
        watcher_steps.remove(provider, ids)
        self.recorder.drop(step.address, ids)
        return ""

    def _wait(self, step: Step, address: Address, provider: Provider, changes: list[Change]) -> str:
        from providers.types import ProviderError, ReadinessError

        after = changes[0].after
        resource = self.recorder.get(step.address)
        assert resource is not None, f"{step.address} has no container to wait for"
        target = after["readiness"] or "TCP"
        port = reach_port(resource.attributes)
        self.emit(Event("waiting", step, 0.0, message=f"waiting for readiness ({target} on port {port})"))
        try:
            took = wait_ready(
                provider, resource.id, port, after["readiness"], after["readiness_timeout"],
                self.stop, on_wait=lambda elapsed, seen: self.emit(Event("waiting", step, elapsed, message=seen)),
            )
        except ProviderError as err:
            if step.address in self._rolls:  # a rolling replace: the old replica serves on
                kept = self._roll_back(step, address, provider)
                raise type(err)(f"{err}; {kept}", getattr(err, "log_tail", "")) if isinstance(err, ReadinessError) \
                    else ProviderError(f"{err}; {kept}") from None
            if isinstance(err, ReadinessError):
                self.recorder.put(resource.model_copy(update={"status": "tainted"}))
            raise
        self.recorder.put(resource.model_copy(update={"status": "ready"}))
        return f"probe passed after {took:.2f}s"


def _published(provider: Provider, container_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
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
