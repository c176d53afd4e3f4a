"""The liveness watcher: one small container per host that serves apps (where the
gateway runs), restarting replicas whose liveness keeps failing, also when no berth
command is running.

What its resource's attributes are (its targets, per app), the container it runs as,
and its changes in a plan. Pure: diff and apply call these, tests compare them as data.
The program itself is planner/watcher_script.py, passed to the container as its source.

A separate container from the gateway, on purpose: it holds the host's Docker socket
(root on the host), the gateway faces the network; neither shares the other's exposure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from planner.attributes import WATCHER, ChangeClass
from planner.serving import gateway
from planner.desired import AppConfig, Stack
from planner.plan import Action, Change
from providers.types import LABEL_ADDRESS, LABEL_CONFIG_HASH, LABEL_STACK, ContainerSpec, HostMount, ObservedContainer
from state.address import Address
from state.canonical import canonical_hash, canonical_json, sha256_hex
from state.model import ResourceState, State

SCRIPT = (Path(__file__).parent / "watcher_script.py").read_text()
SCRIPT_HASH = sha256_hex(SCRIPT)
# Where the script finds the engine inside the container (watcher_script.SOCKET).
SOCKET_TARGET = "/var/run/docker.sock"
CONFIG_ENV = "BERTH_WATCHER_CONFIG"
SCRIPT_ENV = "BERTH_WATCHER_SCRIPT"


def container_name(stack: str) -> str:
    return f"berth-{stack}-watcher"  # apps' containers end in -I, so no app can take it


def hosts(stack: Stack) -> list[str]:
    """Where the gateway runs, the watcher runs: every host that serves apps."""
    return gateway.hosts(stack)


def targets(apps: list[AppConfig]) -> dict[str, dict[str, Any]]:
    """What the watcher checks, per app with a liveness path: the path, the container
    port (it finds each replica's published port in the engine's container list, so a
    replica started on another port is still found), when to restart, and the start
    grace before a replica that never passed is watched (Truss's liveness_delay, else
    readiness_timeout: a replica still loading its model is left alone)."""
    return {
        app.name: {
            "liveness": app.liveness,
            "port": app.port,
            "threshold": app.liveness_failure_threshold,
            "interval": app.probe_interval,
            "grace": app.probe_timing.get("liveness_delay", app.readiness_timeout),
        }
        for app in sorted(apps, key=lambda a: a.name)
        if app.liveness
    }


def engine_socket(stack: Stack, host: str) -> str:
    """The engine's socket on the host: [hosts.NAME] docker_socket for an SSH host;
    locally DOCKER_HOST's path when it is a unix socket, else Docker's default."""
    if host in stack.hosts:
        return stack.hosts[host].docker_socket
    url = urlparse(os.environ.get("DOCKER_HOST") or "")
    return url.path if url.scheme == "unix" and url.path else "/var/run/docker.sock"


def attributes(stack: Stack, host: str) -> dict[str, Any]:
    return {
        "name": container_name(stack.name),
        "image": gateway.image_tag(),
        "socket": engine_socket(stack, host),
        "script_hash": SCRIPT_HASH,
        "targets": targets([app for app in stack.apps.values() if app.host == host]),
    }


def config_hash(attrs: dict[str, Any]) -> str:
    return canonical_hash({k: attrs.get(k) for k in WATCHER.keys(ChangeClass.REPLACE)})


def container_spec(stack: str, address: Address, attrs: dict[str, Any]) -> ContainerSpec:
    """Host network: it probes replicas at 127.0.0.1:PUBLISHED_PORT like the gateway.
    The engine socket is mounted (read-write: restarting is a POST). Restarted by Docker
    if it dies or the host reboots; it needs nothing from berth to carry on."""
    config = {"stack": stack, "targets": attrs["targets"]}
    return ContainerSpec(
        name=attrs["name"],
        image=attrs["image"],
        port=0,
        host_port=0,
        command=("python3", "-u", "-c", f"import os; exec(os.environ[{SCRIPT_ENV!r}])"),
        env={CONFIG_ENV: canonical_json(config), SCRIPT_ENV: SCRIPT},
        network_mode="host",
        host_mounts=(HostMount(source=attrs["socket"], target=SOCKET_TARGET),),
        labels={
            LABEL_STACK: stack,
            LABEL_ADDRESS: str(address),
            LABEL_CONFIG_HASH: config_hash(attrs),
        },
    )


# In plans --------------------------------------------------------------------------------

def diff_watcher(stack: Stack, host: str, prev: ResourceState | None, found: list[ObservedContainer]) -> list[Change]:
    """The host's watcher: created; replaced when any attribute changed (or it stopped,
    or was changed outside berth, or its start was never confirmed); else a no-op."""
    key = Address.watcher(host)
    attrs = attributes(stack, host)
    before = prev.attributes if prev else None
    if found and not (prev and any(c.id == prev.id for c in found)):
        before = found[0].as_before()
    found = sorted(found, key=lambda c: not (prev and c.id == prev.id))
    current, extras = (found[0], found[1:]) if found else (None, [])
    changes = [Change(address=key, type="watcher", action=Action.DELETE, before=c.as_before(), ids=[c.id],
                      reasons=[f"a second container ({c.name}) claims this address"]) for c in extras]

    def change(action: Action, reasons: list[str], forces: list[str] = ()) -> Change:
        return Change(address=key, type="watcher", action=action, before=before, after=attrs,
                      ids=[current.id] if current else [], reasons=reasons, forces_replacement=list(forces))

    if current is None:
        return [change(Action.CREATE, ["watcher container no longer exists on the host"] if prev else []), *changes]
    known = prev is not None and prev.id == current.id
    old = before or {}
    forced = WATCHER.changed(old, attrs, ChangeClass.REPLACE) if known else []
    if forced:
        ours = change(Action.REPLACE, [], forced)
    elif current.state != "running":
        ours = change(Action.REPLACE, [f"watcher container is {current.state or 'not running'}"])
    elif current.labels.get(LABEL_CONFIG_HASH) != config_hash(attrs):
        ours = change(Action.REPLACE, ["watcher container was changed outside berth" if known
                                       else "watcher container is not in state and its config differs"])
    elif known and prev.status != "ready":
        ours = change(Action.REPLACE, ["its start was never confirmed"])
    else:  # known, or started by an interrupted run just as wanted: a no-op records (adopts) it
        ours = change(Action.NOOP, [])
    return [ours, *changes]


def orphan_watchers(by_address: dict[str, list[ObservedContainer]], state: State) -> list[Change]:
    """Watchers of hosts that no longer serve apps, or of a stack with gateway_port
    unset (all of them, on destroy). Takes them out of by_address."""
    changes = []
    for key in [k for k in by_address if Address.parse(k).kind == "watcher"]:
        prev = state.resources.get(key)
        for c in by_address.pop(key):
            changes.append(Change(address=key, type="watcher", action=Action.DELETE,
                                  before=prev.attributes if prev and prev.id == c.id else c.as_before(),
                                  ids=[c.id], reasons=[] if prev else ["not in state, but labelled with this stack"]))
    return changes
