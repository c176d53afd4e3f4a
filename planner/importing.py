"""Import: what state should record for a container berth did not create.

Pure: Docker's inspect of the container (with its image's Config) and the attributes the
configuration wants for the address in, the attributes to record out. Values are read
the way berth sets them, and where the container's value means what the configuration
asks for (the image's own CMD, env the image already sets, `busybox` for
`busybox:latest`) the configuration's spelling is kept, so the next plan shows only
real differences.
"""

from __future__ import annotations

from typing import Any

from planner.attributes import CONTAINER, ChangeClass
from providers.types import normalize_ref


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
