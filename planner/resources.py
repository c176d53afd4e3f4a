"""From an AppConfig to the resources berth manages for it, and back to engine specs.

What a container's attributes are, which of them force a new container, which Docker
can change live, and which only berth reads (probes): one table, used by diff and
apply alike, so the two cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from planner.desired import AppConfig
from providers.types import (
    LABEL_ADDRESS,
    LABEL_APP,
    LABEL_CONFIG_HASH,
    LABEL_CONTENT_HASH,
    LABEL_STACK,
    ContainerSpec,
)
from state.address import Address

# A change to any of these needs a new container. gpus: the device indexes placement gave it.
REPLACE_KEYS = ("name", "image", "command", "env", "port", "host_port", "gpus")
# Docker changes these on a running container (docker update); clearing one needs a new container.
UPDATE_KEYS = ("restart", "cpus", "memory")
# Only berth reads these; changing them touches nothing on the host.
BERTH_KEYS = ("readiness", "liveness", "readiness_timeout", "depends_on")


def canonical_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def container_name(stack: str, app: str, index: int) -> str:
    return f"berth-{stack}-{app}-{index}"


def image_tag(stack: str, app: str, content_hash: str) -> str:
    return f"berth-{stack}-{app}:{content_hash[:12]}"


def image_attributes(stack: str, app: AppConfig, content_hash: str | None) -> dict[str, Any]:
    if app.build is not None:
        assert content_hash is not None, f"no content hash for {app.name}"
        return {
            "source": "build",
            "context": app.build.context,
            "dockerfile": app.build.dockerfile,
            "args": dict(app.build.args),
            "content_hash": content_hash,
            "tag": image_tag(stack, app.name, content_hash),
        }
    return {"source": "image", "ref": app.image}


def image_ref(image_attrs: dict[str, Any]) -> str:
    """What a container names as its image: berth's tag for builds, the user's ref otherwise."""
    return image_attrs["tag"] if image_attrs["source"] == "build" else image_attrs["ref"]


def container_attributes(
    stack: str, app: AppConfig, index: int, image: str, gpus: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    attrs = {
        "name": container_name(stack, app.name, index),
        "image": image,
        "command": list(app.command) if app.command is not None else None,
        "env": dict(app.env),
        "port": app.port,
        "host_port": app.host_port + index,
        "restart": app.restart,
        "cpus": app.cpus,
        "memory": app.memory,
        "readiness": app.readiness,
        "liveness": app.liveness,
        "readiness_timeout": app.readiness_timeout,
        "depends_on": list(app.depends_on),
    }
    if gpus:  # absent without GPUs, so containers made before placement existed keep their hash
        attrs["gpus"] = list(gpus)
    return attrs


def config_hash(attrs: dict[str, Any]) -> str:
    return canonical_hash({k: attrs.get(k) for k in REPLACE_KEYS if k != "gpus" or attrs.get(k)})


def container_spec(stack: str, address: Address, attrs: dict[str, Any]) -> ContainerSpec:
    return ContainerSpec(
        name=attrs["name"],
        image=attrs["image"],
        port=attrs["port"],
        host_port=attrs["host_port"],
        command=tuple(attrs["command"]) if attrs["command"] is not None else None,
        env=attrs["env"],
        restart=attrs["restart"],
        cpus=attrs["cpus"],
        memory=attrs["memory"],
        gpus=tuple(attrs.get("gpus") or ()),
        labels={
            LABEL_STACK: stack,
            LABEL_APP: address.app,
            LABEL_ADDRESS: str(address),
            LABEL_CONFIG_HASH: config_hash(attrs),
        },
    )


def image_labels(stack: str, content_hash: str) -> dict[str, str]:
    """An image is identified by its stack and content, not its app: apps built from one
    context share one image (one build, one transfer), each with its own tag."""
    return {LABEL_STACK: stack, LABEL_CONTENT_HASH: content_hash}


def tag_app(stack: str, tag: str) -> str | None:
    """The app a berth image tag belongs to (`berth-STACK-APP:HASH`), else None."""
    prefix = f"berth-{stack}-"
    name = tag.rsplit(":", 1)[0]
    return name[len(prefix):] if name.startswith(prefix) else None
