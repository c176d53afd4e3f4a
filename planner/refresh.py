"""Refresh: read every host the stack touches (one batched query each, in parallel) and
hash the build contexts, producing the inputs diff needs."""

from __future__ import annotations

from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, TypeVar

from planner.contexthash import context_hash
from planner.desired import Stack
from planner.diagnostics import Diagnostic, DiagnosticsError
from planner.resources import container_spec, image_labels, reach_port, secret_names, volume_labels
from providers.base import LOCAL_HOST, Provider
from providers.types import Observation, ObservedContainer, ObservedImage, ObservedVolume, ProviderError
from state.model import State

T = TypeVar("T")


def observe_all(providers: dict[str, Provider], stack: str, state: State | None = None,
                secret_hosts: set[str] | None = None, weights_hosts: set[str] | None = None) -> dict[str, Observation]:
    """Each host's view, read in parallel. Containers state records but the label query
    did not list (adopted by `import`, unlabelled) are looked up by ID, in one more call
    on that host only when there are such. Secret files are listed on `secret_hosts`
    only (None: on every host); see secret_hosts(). The weights cache is listed on
    `weights_hosts` only (None: on none)."""
    def observe(host: str, provider: Provider) -> Observation:
        listed = {"weights": True} if weights_hosts is not None and host in weights_hosts else {}
        obs = provider.observe(stack, secrets=secret_hosts is None or host in secret_hosts, **listed)
        seen = {c.id for c in obs.containers}
        missing = sorted(r.id for r in (state.resources.values() if state else ())
                         if r.type in ("container", "gateway", "watcher") and r.host == host and r.id and r.id not in seen)
        if missing:
            obs = replace(obs, containers=obs.containers + tuple(provider.containers_by_id(missing)))
        return with_limits(obs, provider, state)

    return per_host(providers, observe)


def per_host(providers: dict[str, Provider], read: Callable[[str, Provider], T]) -> dict[str, T]:
    """read(host, provider) for each host, the hosts in parallel (one alone on this
    thread): by host. Every host that fails is named, in one DiagnosticsError."""
    if len(providers) == 1:
        (host, provider), = providers.items()
        try:
            return {host: read(host, provider)}
        except ProviderError as err:
            raise DiagnosticsError([Diagnostic(str(err))]) from None
    with ThreadPoolExecutor(max_workers=min(16, len(providers))) as pool:
        futures = {host: pool.submit(read, host, p) for host, p in providers.items()}
    found, errors = {}, []
    for host, future in futures.items():
        try:
            found[host] = future.result()
        except ProviderError as err:
            errors.append(Diagnostic(str(err)))
    if errors:
        raise DiagnosticsError(errors)
    return found


def with_limits(obs: Observation, provider: Provider, state: State | None) -> Observation:
    """The CPU and memory limits of the app containers state records, read from the
    host (the list call has none), so that a `docker update` behind berth's back is
    planned back. One read per such container, on the connection refresh already holds."""
    recorded = {r.id for r in (state.resources.values() if state else ())
                if r.type == "container" and r.host == obs.host and r.id}
    ids = [c.id for c in obs.containers if c.id in recorded and c.state == "running"]
    if not ids:
        return obs
    limits = provider.container_limits(ids)
    return replace(obs, containers=tuple(replace(c, limits=limits[c.id]) if c.id in limits else c
                                         for c in obs.containers))


def secret_hosts(stack: Stack, state: State | None) -> set[str]:
    """The hosts where the stack may have secret files: those of its apps that use
    secrets (every host, for such an app that GPU placement may put anywhere) and those
    state records secret files on. Elsewhere observe skips the listing, which on an SSH
    host would cost an SFTP session: a stack without secrets plans on one channel."""
    hosts = {r.host for r in (state.resources.values() if state else ()) if r.type == "secret"}
    for app in stack.apps.values():
        if secret_names(app):
            hosts |= {LOCAL_HOST, *stack.hosts} if app.host_auto else {app.host}
    return hosts


def weights_hosts(stack: Stack) -> set[str]:
    """The hosts whose weights cache the plan must read: those of apps with weights."""
    hosts: set[str] = set()
    for app in stack.apps.values():
        if app.weights:
            hosts |= {LOCAL_HOST, *stack.hosts} if app.host_auto else {app.host}
    return hosts


def observe_from_state(state: State | None, stack: str, hosts: set[str]) -> dict[str, Observation]:
    """What the hosts would show if they matched state exactly: `plan --refresh=false`
    plans from stored state alone, contacting no host. Containers are running with the
    labels berth would have set; images carry their tags and labels."""
    containers: dict[str, list[ObservedContainer]] = {h: [] for h in hosts}
    images: dict[str, list[ObservedImage]] = {h: [] for h in hosts}
    secrets: dict[str, list[tuple[str, str]]] = {h: [] for h in hosts}
    volumes: dict[str, list[ObservedVolume]] = {h: [] for h in hosts}
    weights: dict[str, set[str]] = {h: set() for h in hosts}
    for key, resource in (state.resources.items() if state else ()):
        attrs = resource.attributes
        if resource.type == "volume":
            volumes.setdefault(resource.host, []).append(
                ObservedVolume(name=resource.id, labels=volume_labels(stack, resource.address)))
        elif resource.type == "weights":
            weights.setdefault(resource.host, set()).add(resource.id)
        elif resource.type == "secret":
            address = resource.address
            secrets.setdefault(resource.host, []).append((address.app, address.secret))
        elif resource.type == "container":
            spec = container_spec(stack, resource.address, {**_SPEC_DEFAULTS, **attrs})
            containers.setdefault(resource.host, []).append(ObservedContainer(
                id=resource.id, name=attrs.get("name", ""), state="running", image_id="",
                labels=spec.labels, host_ports=(reach_port(attrs),) if reach_port(attrs) else ()))
        elif resource.type == "gateway":
            from planner.serving.gateway import container_spec as gateway_spec

            labels = gateway_spec(stack, resource.address, attrs).labels
            containers.setdefault(resource.host, []).append(ObservedContainer(
                id=resource.id, name=attrs.get("name", ""), state="running", image_id="", labels=labels))
        elif resource.type == "watcher":
            from planner.serving.watcher import container_spec as watcher_spec

            labels = watcher_spec(stack, resource.address, attrs).labels
            containers.setdefault(resource.host, []).append(ObservedContainer(
                id=resource.id, name=attrs.get("name", ""), state="running", image_id="", labels=labels))
        elif resource.type == "image":
            if attrs.get("source") == "build":
                tags, labels = (attrs["tag"],), image_labels(stack, attrs["content_hash"])
            else:
                tags, labels = ((attrs["ref"],) if attrs.get("ref") else ()), {}
            found = images.setdefault(resource.host, [])
            same = next((i for i, image in enumerate(found) if image.id == resource.id), None)
            if same is None:
                found.append(ObservedImage(id=resource.id, tags=tags, digests=(), labels=labels))
            else:  # apps built from one context share one image, each with its own tag
                found[same] = replace(found[same], tags=found[same].tags + tags, labels=found[same].labels | labels)
    return {h: Observation(host=h, containers=tuple(containers.get(h, ())), images=tuple(images.get(h, ())),
                           secrets=tuple(sorted(secrets.get(h, ()))), volumes=tuple(volumes.get(h, ())),
                           weights=frozenset(weights.get(h, ())))
            for h in set(containers) | set(images) | set(secrets) | set(volumes) | set(weights)}


_SPEC_DEFAULTS = {"name": "", "image": "", "command": None, "env": {}, "port": 0, "host_port": 0,
                  "restart": "unless-stopped", "cpus": None, "memory": None}


def gpu_inventories(providers: dict[str, Provider]) -> dict[str, tuple]:
    """Each host's GPUs (nvidia-smi, one command per host), in parallel."""
    return per_host(providers, lambda host, provider: provider.gpus()) if providers else {}


def content_hashes(stack: Stack, memo: MutableMapping[str, str] | None) -> dict[str, str]:
    """Each build context's hash by app, and each local weights directory's cache key
    (under planner.weights.cache.hash_key)."""
    from planner.weights.cache import hash_key, local_key

    hashes = {}
    for app in stack.apps.values():
        for index, source in enumerate(app.weights):
            if source.kind == "dir" and hash_key(source) not in hashes:
                try:
                    hashes[hash_key(source)] = local_key(source, memo)
                except OSError as err:
                    raise DiagnosticsError([Diagnostic(
                        f"cannot read the weights directory of app {app.name}: {err}", file=stack.file,
                        key=f"apps.{app.name}.weights[{index}].source")]) from None
    for app in stack.apps.values():
        if app.build is not None:
            try:
                hashes[app.name] = context_hash(app.build, memo)
            except OSError as err:
                raise DiagnosticsError([Diagnostic(
                    f"cannot read the build context of app {app.name}: {err}", file=stack.file,
                    key=f"apps.{app.name}.build")]) from None
    return hashes
