"""Import: adopting a container berth did not create, and what state should record for
it (its address checked against the stack, its attributes read from Docker's inspect).

attributes_from_inspect is pure: Docker's inspect of the container (with its image's
Config) and the attributes the configuration wants for the address in, the attributes to
record out. Values are read
the way berth sets them, and where the container's value means what the configuration
asks for (the image's own CMD, env the image already sets, `busybox` for
`busybox:latest`) the configuration's spelling is kept, so the next plan shows only
real differences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from planner.attributes import CONTAINER, ChangeClass
from providers.types import LABEL_STACK, normalize_ref
from state.address import Address, AddressError
from state.errors import StateError
from state.model import ResourceState, State

if TYPE_CHECKING:
    from planner.pipeline import Context
    from providers.base import Provider
    from state.store import StateStore


def container_address(text: str) -> Address:
    """The address to import into: import adopts containers only."""
    address = Address.parse(text)
    if address.kind != "container":
        raise AddressError(f"import adopts containers: {str(address)} is an {address.kind}")
    return address


def desired_attributes(ctx: Context, address: Address) -> dict[str, Any]:
    """What the stack wants at the address, which must be one of its containers."""
    from planner.pipeline import content_hashes
    from planner.resources import container_attributes, image_attributes, image_ref

    stack, key = ctx.stack, str(address)
    app = stack.apps.get(address.app)
    if app is None:
        raise StateError(f"import: app {address.app} is not in {stack.file}; add it there first, "
                         "so berth knows what the container should be")
    if app.host != address.host or address.index >= app.replicas:
        raise StateError(f"import: the stack file has no {key} (app {app.name} runs {app.replicas} "
                         f"replica(s) on host {app.host}: app.{app.name}.container[0..{app.replicas - 1}]@{app.host})")
    hashes = content_hashes(ctx)
    return container_attributes(stack.name, app, address.index,
                                image_ref(image_attributes(stack.name, app, hashes.get(app.name))))


def adopt(store: StateStore, stack: str, address: Address, provider: Provider, container: str,
          desired: dict[str, Any]) -> tuple[ResourceState, State]:
    """Record the container (by name or ID on the address's host) at the address: the
    resource recorded and the state written. The caller holds the lock."""
    key = str(address)
    state = store.read() or State(stack=stack)
    if key in state.resources:
        raise StateError(f"import: {key} is already in state (container {state.resources[key].id[:12]}); "
                         f"`berth state rm {key}` first to adopt another")
    info = provider.inspect_container(container)
    if info is None:
        raise StateError(f"import: no container {container} on host {address.host}")
    owner = ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_STACK)
    if owner and owner != stack:
        raise StateError(f"import: container {container} on host {address.host} belongs to stack {owner!r} "
                         f"(label {LABEL_STACK}), not {stack!r}: berth does not take another stack's container; "
                         f"it is managed from {owner!r}'s stack file")
    holder = next((k for k, r in state.resources.items() if r.id == info["Id"]), None)
    if holder:
        raise StateError(f"import: container {container} is already in state as {holder}")
    running = (info.get("State") or {}).get("Running", False)
    resource = ResourceState(address=key, type="container", host=address.host, id=info["Id"],
                             status="ready" if running else "created",
                             attributes=attributes_from_inspect(info, desired))
    new = state.model_copy(update={
        "resources": state.resources | {key: resource},
        "forgotten": [i for i in state.forgotten if i != info["Id"]],
    })
    return resource, store.write(new, note=f"import {key}")


def attributes_from_inspect(info: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    config = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    image_config = info.get("ImageConfig") or {}

    image = config.get("Image") or info.get("Image", "")
    if desired.get("image") and normalize_ref(image) == normalize_ref(desired["image"]):
        image = desired["image"]

    cmd = config.get("Cmd")
    command = None if cmd == image_config.get("Cmd") else (list(cmd) if cmd is not None else None)
    if command is None and desired.get("command") is not None and desired["command"] == image_config.get("Cmd"):
        command = desired["command"]

    image_env = dict(_pairs(image_config.get("Env")))
    env = {k: v for k, v in _pairs(config.get("Env")) if image_env.get(k) != v}

    port, host_port = _published(host.get("PortBindings") or {}, desired.get("port"))

    restart = (host.get("RestartPolicy") or {}).get("Name") or "no"
    if host.get("NanoCpus"):
        cpus = host["NanoCpus"] / 1e9
    elif host.get("CpuQuota") and host.get("CpuQuota") > 0:
        cpus = host["CpuQuota"] / (host.get("CpuPeriod") or 100_000)
    else:
        cpus = None
    memory = host.get("Memory") or None

    attrs = {
        "name": (info.get("Name") or "").lstrip("/"),
        "image": image,
        "command": command,
        "env": env,
        "port": port,
        "host_port": host_port,
        "restart": restart,
        "cpus": cpus,
        "memory": memory,
    }
    # Probes and ordering are berth's own: the configuration's, as nothing on the host says.
    attrs |= {k: desired.get(k) for k in CONTAINER.keys(ChangeClass.BERTH)}
    return attrs


def _pairs(env: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in env or []:
        key, _, value = item.partition("=")
        out.append((key, value))
    return out


def _published(bindings: dict[str, Any], wanted: int | None) -> tuple[int | None, int | None]:
    """(container port, host port) of the binding for the wanted port, else the first."""
    found = []
    for spec, binds in bindings.items():
        port = int(spec.split("/", 1)[0])
        for bind in binds or []:
            if bind.get("HostPort"):
                found.append((port, int(bind["HostPort"])))
    found.sort(key=lambda pair: pair[0] != wanted)
    return found[0] if found else (None, None)
