"""What the hosts or state hold that the stack no longer wants: containers, gateways,
images and secret files labelled with the stack but not desired (delete), and records
of resources gone from the hosts (forget). Part of the diff (planner.diff calls these).
"""

from __future__ import annotations

from collections import defaultdict

from planner.desired import AppConfig
from planner.plan import Action, Change
from planner.resources import image_tag, tag_app
from providers.base import BUILD_HOST
from providers.types import LABEL_STACK, Observation, ObservedContainer
from state.address import Address
from state.model import State


def orphan_gateways(by_address: dict[str, list[ObservedContainer]], state: State,
                    wanted: frozenset[str] = frozenset()) -> list[Change]:
    """Gateways of hosts that no longer run apps, or of a stack with gateway_port unset
    (all of them, on destroy). A stack's part of a shared gateway whose container another
    stack's apply replaced (so the ID state holds is gone) is removed by the container's
    name: the stack's routes must leave it, not stay behind when state forgets them."""
    from planner.serving.gateway import is_shared

    changes = []
    for key in [k for k in by_address if Address.parse(k).kind == "gateway"]:
        prev = state.resources.get(key)
        for c in by_address.pop(key):
            changes.append(Change(address=key, type="gateway", action=Action.DELETE,
                                  before=prev.attributes if prev and prev.id == c.id else c.as_before(),
                                  ids=[c.id], reasons=[] if prev else ["not in state, but labelled with this stack"]))
    done = {str(c.address) for c in changes} | set(wanted)
    for key, prev in state.resources.items():
        name = prev.attributes.get("name", "")
        if prev.type == "gateway" and key not in done and is_shared(name):
            changes.append(Change(address=key, type="gateway", action=Action.DELETE, before=prev.attributes,
                                  ids=[name], reasons=[("the shared gateway was replaced since: its routes "
                                                        "are taken out of it by name")]))
    return changes


def orphan_secrets(planned: set[str], state: State, observed: dict[str, Observation]) -> list[Change]:
    """Secret files on a host that no app mounts any more (all of them, on destroy)."""
    changes = []
    for host, obs in observed.items():
        for app, name in obs.secrets:
            key = Address.secret_file(app, name, host)
            if key in planned:
                continue
            prev = state.resources.get(str(key))
            changes.append(Change(address=key, type="secret", action=Action.DELETE,
                                  before=prev.attributes if prev else {"name": name},
                                  ids=[prev.id] if prev and prev.id else [],
                                  reasons=[] if prev else ["not in state, but in this stack's secret directory"]))
    return changes


def orphan_containers(by_address: dict[str, list[ObservedContainer]], state: State) -> list[Change]:
    changes = []
    for key, containers in by_address.items():
        prev = state.resources.get(key)
        for c in containers:
            changes.append(Change(address=key, type="container", action=Action.DELETE,
                                  before=prev.attributes if prev and prev.id == c.id else c.as_before(),
                                  ids=[c.id], reasons=[] if prev else ["not in state, but labelled with this stack"]))
    return changes


def forgotten(state: State, planned: set[str]) -> list[Change]:
    """Resources in state that nothing else planned for: gone from their host, or images
    berth does not own (pulled by reference). Apply drops them from state."""
    return [
        Change(address=key, type=prev.type, action=Action.NOOP, before=prev.attributes,
               reasons=[f"no longer desired; forgotten, its cache entry {prev.id[:12]} kept on the host (berth "
                        "never deletes weights: other stacks there may mount them)" if prev.type == "weights"
                        else "no longer desired or present; forgotten"])
        for key, prev in state.resources.items()
        if key not in planned
    ]


def orphan_images(
    stack: str, apps: dict[str, AppConfig], state: State, observed: dict[str, Observation],
    content_hashes: dict[str, str],
) -> list[Change]:
    """Tags of built images whose app is gone (all of them, on destroy). Removal is by
    tag: an image another app still uses keeps its other tags and stays. The local
    engine keeps the current build of an app that runs on another host: images for SSH
    hosts are built here and sent from here (the next change sends only new layers)."""
    builds = {name: image_tag(stack, name, content_hashes[name]) for name in apps if name in content_hashes}
    leftovers: dict[Address, list[str]] = defaultdict(list)
    for host, obs in observed.items():
        for image in obs.images:
            if image.labels.get(LABEL_STACK) != stack or image.id in state.forgotten:
                continue
            for tag in image.tags:
                app = tag_app(stack, tag)
                if host == BUILD_HOST and app in apps and builds.get(app) == tag:
                    continue
                if app is not None and (app not in apps or apps[app].host != host):
                    leftovers[Address.image(app, host)].append(tag)
            if not image.tags and not apps:  # untagged, left by an interrupted run
                owner = next((k for k, r in state.resources.items() if r.id == image.id), None)
                leftovers[Address.parse(owner) if owner else Address.image("orphan", host)].append(image.id)
    changes = []
    for key, refs in leftovers.items():
        prev = state.resources.get(str(key))
        changes.append(Change(address=key, type="image", action=Action.DELETE,
                              before=prev.attributes if prev else {"tags": refs}, ids=refs))
    return changes
