"""From an AppConfig to the resources berth manages for it, and back to engine specs.

What a container's attributes are, their config hash, and the engine specs they become;
which of them force a new container is planner.attributes' table, used by diff and
apply alike, so the two cannot disagree.
"""

from __future__ import annotations

import math
import re
from typing import Any

from planner.attributes import CONTAINER, ChangeClass
from planner.desired import AppConfig, SecretSource, container_name, volume_name
from providers.types import (
    LABEL_ADDRESS,
    LABEL_APP,
    LABEL_CONFIG_HASH,
    LABEL_CONTENT_HASH,
    LABEL_STACK,
    SECRETS_MOUNT,
    ContainerSpec,
    HostMount,
    SecretMount,
    SecretParts,
    VolumeSpec,
)
from state.address import Address
from state.canonical import canonical_hash

# Which attributes force a new container, which Docker changes live (a container keeps
# its ID through them, which is what lets an app renamed in the file after `berth state
# mv` keep its container), which restart it and which only berth reads: planner.attributes.
# Attributes shown as "(sensitive value)" in plans and `state show`, text and JSON.
SENSITIVE_KEYS = frozenset({"value", "secret_versions"})
SENSITIVE = "(sensitive value)"


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
            # Only when set: images planned before these keys existed keep their attributes.
            **({"build_secrets": list(app.build.secrets)} if app.build.secrets else {}),
            **({"target": app.build.target} if app.build.target else {}),
            **({"cache_from": list(app.build.cache_from)} if app.build.cache_from else {}),
            **({"build_on": "host"} if app.build.on_host else {}),
            "content_hash": content_hash,
            "tag": image_tag(stack, app.name, content_hash),
        }
    return {"source": "image", "ref": app.image}


def image_ref(image_attrs: dict[str, Any]) -> str:
    """What a container names as its image: berth's tag for builds, the user's ref otherwise."""
    return image_attrs["tag"] if image_attrs["source"] == "build" else image_attrs["ref"]


def secret_names(app: AppConfig) -> list[str]:
    """The secrets an app's containers mount: those it lists, and those it passes as env
    (a secret in secret_env is also mounted), sorted so that order never matters."""
    return sorted({*app.secrets, *app.secret_env.values()})


def secret_parts(stack: str, app: str, secret: str) -> SecretParts:
    return (stack, app, secret)


def secret_attributes(source: SecretSource, value_digest: str) -> dict[str, Any]:
    """A secret file's attributes. `value` is the keyed digest of the value, never the
    value itself; plans and `state show` display it as (sensitive value)."""
    return {"name": source.name, "source": source.source, "mount": f"{SECRETS_MOUNT}/{source.name}",
            "value": value_digest}


def masked(attrs: dict[str, Any] | None) -> dict[str, Any] | None:
    """attrs for display: sensitive ones replaced by "(sensitive value)"."""
    if attrs is None:
        return None
    return {k: SENSITIVE if k in SENSITIVE_KEYS and v not in (None, {}) else v for k, v in attrs.items()}


def container_attributes(
    stack: str, app: AppConfig, index: int, image: str, secret_versions: dict[str, str] | None = None,
    gpus: tuple[str, ...] | None = None, weights: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """secret_versions: the digest of each secret's value, by name (apps with secrets).
    gpus: the device indexes placement gave this replica. weights: {mount, key} of each
    of the app's weights sources (key None: known once its weights step ran)."""
    attrs = {
        "name": container_name(stack, app.name, index),
        "image": image,
        "command": list(app.command) if app.command is not None else None,
        "env": dict(app.env),
        "port": app.port,
        "host_port": app.host_port + index if app.host_port is not None else None,
        "restart": app.restart,
        "cpus": app.cpus,
        "memory": app.memory,
        "readiness": app.readiness,
        "liveness": app.liveness,
        "readiness_timeout": app.readiness_timeout,
        "depends_on": list(app.depends_on),
    } | _secret_attributes(app, secret_versions or {})
    if gpus:  # absent without GPUs, so containers made before placement existed keep their hash
        attrs["gpus"] = list(gpus)
    if weights:  # absent without weights, so containers made before them keep their hash
        attrs["weights"] = [dict(w) for w in weights]
    if app.max_unavailable != 1:  # absent at the default, so states recorded before it plan no change
        attrs["max_unavailable"] = app.max_unavailable
    if app.port_range is not None and app.host_port is None:  # [gateway] port_range: where its port is picked
        attrs["port_range"] = list(app.port_range)
    return attrs | runtime_attributes(app)


def runtime_attributes(app: AppConfig) -> dict[str, Any]:
    """volumes, shm_size, ipc, ulimits, entrypoint, stop_timeout: each absent when unset,
    so containers recorded before these keys existed keep their config hash."""
    found: dict[str, Any] = {}
    if app.volumes:
        found["volumes"] = [f"{m.source}:{m.target}" + (":ro" if m.read_only else "") for m in app.volumes]
    if app.shm_size is not None:
        found["shm_size"] = app.shm_size
    if app.ipc is not None:
        found["ipc"] = app.ipc
    if app.ulimits:
        found["ulimits"] = dict(sorted(app.ulimits.items()))
    if app.entrypoint is not None:
        found["entrypoint"] = list(app.entrypoint)
    if app.stop_timeout is not None:
        found["stop_timeout"] = app.stop_timeout
    return found


def volume_mounts(stack: str, attrs: dict[str, Any]) -> tuple[VolumeSpec, ...]:
    """A container's `volumes` attribute as engine mounts: a named volume is the stack's
    Docker volume berth-STACK-NAME, a host path is bound as it is."""
    mounts = []
    for entry in attrs.get("volumes") or ():
        source, target, *mode = entry.split(":")
        named = not source.startswith("/")
        mounts.append(VolumeSpec(source=volume_name(stack, source) if named else source, target=target,
                                 read_only=mode == ["ro"], named=named))
    return tuple(mounts)


def _secret_attributes(app: AppConfig, versions: dict[str, str]) -> dict[str, Any]:
    names = secret_names(app)
    if not names:
        return {}
    return {
        "secrets": names,
        "secret_env": dict(sorted(app.secret_env.items())),
        "secret_versions": {name: versions[name] for name in names},
    }


_BERTH_TAG = re.compile(r"^berth-.+:(?P<hash>[0-9a-f]{12})$")


def image_identity(image: str | None) -> str | None:
    """What an image attribute runs, not what it is called: berth's tag for a build
    (`berth-STACK-APP:HASH`) names the app, but apps built from one context, or an app
    renamed, run the same image, identified by its content hash."""
    match = _BERTH_TAG.match(image or "")
    return f"berth-build:{match['hash']}" if match else image


def replace_view(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that need a new container when they change, as compared. The
    optional keys (secrets, gpus) count only when set, so containers made before they
    existed keep their hash."""
    view = CONTAINER.view(attrs, ChangeClass.REPLACE)
    return view | {"image": image_identity(view["image"])}


def config_hash(attrs: dict[str, Any]) -> str:
    """The `berth.config-hash` label: what the container runs, not what it is called, so a
    container renamed in place (the label cannot change) still matches."""
    return canonical_hash(replace_view(attrs))


def legacy_config_hashes(attrs: dict[str, Any]) -> set[str]:
    """Labels set by berth before the hash left out the name: still recognised, so an
    upgrade does not replace every container once."""
    return {canonical_hash({k: attrs.get(k) for k in ("name", "image", "command", "env", "port", "host_port")})}


def reach_port(attrs: dict[str, Any]) -> int | None:
    """The host port a replica answers on: the one berth picked when the app has no
    fixed host_port (published_port, recorded when it started), else host_port."""
    return attrs.get("published_port") or attrs.get("host_port")


def weights_mounts(attrs: dict[str, Any], weights_root: str | None) -> tuple[HostMount, ...]:
    """The read-only bind mounts of a container's weights: ROOT/entries/KEY/files at each mount."""
    mounts = attrs.get("weights") or []
    if not mounts:
        return ()
    assert weights_root is not None, f"{attrs.get('name')}: weights without the host's cache"
    for entry in mounts:
        assert entry.get("key"), f"{attrs.get('name')}: weights at {entry.get('mount')} have no cache key yet"
    return tuple(HostMount(f"{weights_root}/entries/{entry['key']}/files", entry["mount"], read_only=True)
                 for entry in mounts)


def container_spec(
    stack: str, address: Address, attrs: dict[str, Any], secret_env: dict[str, str] | None = None,
    weights_root: str | None = None,
) -> ContainerSpec:
    """secret_env: the values of attrs' secret_env variables, which apply reads from the
    secrets' sources; plans and state never hold them. weights_root: the host's weights
    cache (Provider.weights_cache), needed when attrs mount weights."""
    names = attrs.get("secrets") or []
    return ContainerSpec(
        name=attrs["name"],
        image=attrs["image"],
        port=attrs["port"],
        host_port=attrs["host_port"],
        pick_ports=tuple(attrs["port_range"]) if attrs.get("port_range") else None,  # type: ignore[arg-type]
        command=tuple(attrs["command"]) if attrs["command"] is not None else None,
        env=attrs["env"],
        restart=attrs["restart"],
        cpus=attrs["cpus"],
        memory=attrs["memory"],
        secret_mounts=tuple(SecretMount(secret_parts(stack, address.app, name), f"{SECRETS_MOUNT}/{name}")
                            for name in names),
        secret_env=dict(secret_env or {}),
        gpus=tuple(attrs.get("gpus") or ()),
        volumes=volume_mounts(stack, attrs),
        shm_size=attrs.get("shm_size"),
        ipc_mode=attrs.get("ipc"),
        ulimits=dict(attrs.get("ulimits") or {}),
        entrypoint=tuple(attrs["entrypoint"]) if attrs.get("entrypoint") is not None else None,
        stop_timeout=math.ceil(attrs["stop_timeout"]) if attrs.get("stop_timeout") is not None else None,
        host_mounts=weights_mounts(attrs, weights_root) if weights_root else (),
        labels={
            LABEL_STACK: stack,
            LABEL_APP: address.app,
            LABEL_ADDRESS: str(address),
            LABEL_CONFIG_HASH: config_hash(attrs),
        },
    )


def volume_attributes(stack: str, volume: str) -> dict[str, Any]:
    """A named volume's attributes: its name in the file and its Docker volume's."""
    return {"volume": volume, "name": volume_name(stack, volume)}


def volume_labels(stack: str, address: Address) -> dict[str, str]:
    return {LABEL_STACK: stack, LABEL_ADDRESS: str(address)}


def mounted_volumes(app: AppConfig) -> list[str]:
    """The named volumes an app's containers mount, in the file's order."""
    return list(dict.fromkeys(m.source for m in app.volumes if m.named))


def image_labels(stack: str, content_hash: str) -> dict[str, str]:
    """An image is identified by its stack and content, not its app: apps built from one
    context share one image (one build, one transfer), each with its own tag."""
    return {LABEL_STACK: stack, LABEL_CONTENT_HASH: content_hash}


def tag_app(stack: str, tag: str) -> str | None:
    """The app a berth image tag belongs to (`berth-STACK-APP:HASH`), else None."""
    prefix = f"berth-{stack}-"
    name = tag.rsplit(":", 1)[0]
    return name[len(prefix):] if name.startswith(prefix) else None
