"""Diff: desired Stack × stored State × observed hosts → Plan.

Pure: everything it needs (state, observations, context hashes) is passed in, so plan
tests are data. The rules, per resource:

- desired, absent everywhere → create; in state but gone from the host → create (drift)
- container not running, tainted, or its config-hash label not ours → replace
- a replace-forcing attribute changed → replace, marking those attributes
- only live-changeable attributes (restart, limits) or berth-side ones (probes) → update
- readiness never confirmed (an earlier run died while waiting) → update: wait again
- labelled with the stack but not desired → delete; in state, gone and not desired → forget
- a secret file: absent from the host → create; its value's digest or its source
  changed → update (rewrite); on the host but not desired → delete
- a container whose mounted secret's value changed → update (restart), or replace when
  that secret is also one of its environment variables (secret_env)

A container is matched to its address by the engine ID state records first, and by its
`berth.address` label only when state has no record of it: labels cannot change on a
live container, so after `state mv` (or `import` of an unlabelled container) the ID is
what says which resource it is. IDs `state rm` forgot are never claimed.

Attributes are compared with what berth recorded in state, never with what the engine
reports, so engine defaults never show up as changes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from planner import leftovers, volumes
from planner.serving import gateway
from planner.desired import AppConfig, Stack
from planner.plan import Action, Change, Plan
from planner.attributes import CONTAINER, GATEWAY, ChangeClass
from planner.resources import (
    config_hash,
    container_attributes,
    image_attributes,
    image_labels,
    image_ref,
    legacy_config_hashes,
    replace_view,
    secret_attributes,
    secret_names,
)
from providers.types import (
    LABEL_ADDRESS,
    LABEL_APP,
    LABEL_CONFIG_HASH,
    Observation,
    ObservedContainer,
)
from state.address import Address, ResourceKind
from state.model import ResourceState, State


def diff(
    stack: Stack,
    state: State | None,
    observed: dict[str, Observation],
    content_hashes: dict[str, str],
    *,
    destroy: bool = False,
    secret_digests: dict[str, str] | None = None,
    gpus: dict[tuple[str, int], tuple[str, ...]] | None = None,
    remove_volumes: bool = False,
    placement: Any = None,
) -> Plan:
    """secret_digests: the keyed digest of each secret's current value, by name (every
    secret an app uses; none are needed to destroy). gpus: the devices placement
    assigned, per (app, replica); apps' hosts already resolved by it (planner.placement).
    remove_volumes: a destroy removes the named volumes too (`destroy --volumes`);
    otherwise they are kept (planner.volumes). placement: that Placement, whose spare GPUs
    replaced GPU replicas start beside the old ones on (planner.placement.start_first)."""
    state = state or State(stack=stack.name)
    apps = {} if destroy else stack.apps
    digests = secret_digests or {}
    changes: list[Change] = []
    by_address = _observed_by_address(observed, state)

    for app in apps.values():
        obs = observed[app.host]
        image_attrs = image_attributes(stack.name, app, content_hashes.get(app.name))
        image_change = _diff_image(stack.name, app, image_attrs, state, obs)
        changes.append(image_change)
        changes.extend(_diff_secrets(stack, app, digests, state, obs))
        weights = _diff_weights(app, content_hashes, state, obs)
        changes.extend(weights)
        mounts = [{"mount": w.after["mount"], "key": w.after["key"]} for w in weights]
        versions = {name: digests[name] for name in secret_names(app)}
        for index in range(app.replicas):
            address = Address.container(app.name, index, app.host)
            attrs = container_attributes(stack.name, app, index, image_ref(image_attrs), versions,
                                         (gpus or {}).get((app.name, index)), mounts)
            found = by_address.pop(str(address), [])
            change, extra = _diff_container(address, attrs, state.resources.get(str(address)), found, image_change, obs)
            changes.append(change)
            changes.extend(extra)

    if placement is not None:
        from planner.placement import start_first

        changes = start_first(changes, placement)
    for host in ([] if destroy else gateway.hosts(stack)):
        key = Address.gateway(host)
        ours = _diff_gateway(stack, host, state.resources.get(str(key)), by_address.pop(str(key), []),
                             gateway.upstreams([a for a in apps.values() if a.host == host],
                                               {c.address: c for c in changes if c.type is ResourceKind.CONTAINER}),
                             {name: digests[name] for name in (*stack.gateway_api_keys, *(stack.gateway_tls_secrets or ()))
                              if name in digests})
        changes.extend(ours)
        if ours[0].action in (Action.NOOP, Action.UPDATE):
            changes = _rolling(changes, apps, host)
    changes.extend(volumes.diff_volumes(stack, state, observed, destroy=destroy, remove_volumes=remove_volumes))
    changes.extend(leftovers.orphan_gateways(by_address, state, frozenset(
        () if destroy else (str(Address.gateway(host)) for host in gateway.hosts(stack)))))
    changes.extend(_watchers(stack, state, by_address, destroy))
    changes.extend(leftovers.orphan_containers(by_address, state))
    changes.extend(leftovers.orphan_images(stack.name, apps, state, observed, content_hashes))
    changes.extend(leftovers.orphan_secrets({c.address for c in changes}, state, observed))
    changes.extend(leftovers.forgotten(state, {str(c.address) for c in changes}))
    changes.sort(key=lambda c: c.address.sort_key())
    return Plan(
        stack=stack.name,
        lineage=state.lineage if state.serial else None,
        serial=state.serial,
        destroy=destroy,
        changes=changes,
    )


def _observed_by_address(observed: dict[str, Observation], state: State) -> dict[str, list[ObservedContainer]]:
    found: dict[str, list[ObservedContainer]] = defaultdict(list)
    recorded = {r.id: key for key, r in state.resources.items() if r.type in ("container", "gateway", "watcher") and r.id}
    forgotten = set(state.forgotten)
    for obs in observed.values():
        for container in obs.containers:
            if container.id in forgotten:
                continue
            # State's record (by engine ID) wins over the label. Every container berth
            # makes carries its address; one without cannot be planned back, so it is
            # reported under the app it names.
            address = recorded.get(container.id) or container.labels.get(LABEL_ADDRESS) or str(
                Address.container(container.labels.get(LABEL_APP, "unknown"), 0, obs.host))
            found[address].append(container)
    return found


def _diff_image(stack: str, app: AppConfig, attrs: dict[str, Any], state: State, obs: Observation) -> Change:
    address = Address.image(app.name, app.host)
    prev = state.resources.get(str(address))
    before = prev.attributes if prev else None
    if attrs["source"] == "build":
        wanted = image_labels(stack, attrs["content_hash"])
        found = next((i for i in obs.images if wanted.items() <= i.labels.items()), None)
    else:
        found = obs.image_for_ref(attrs["ref"])
    if found is not None:
        if attrs["source"] == "build" and attrs["tag"] not in found.tags:
            return Change(address=address, type="image", action=Action.UPDATE, before=before, after=attrs,
                          ids=[found.id], reasons=[f"image is on the host but not tagged {attrs['tag']}"])
        return Change(address=address, type="image", action=Action.NOOP, before=before, after=attrs, ids=[found.id])
    if attrs["source"] == "build" and prev and prev.attributes.get("content_hash") not in (None, attrs["content_hash"]):
        return Change(address=address, type="image", action=Action.CREATE_THEN_DELETE, before=before, after=attrs,
                      ids=[prev.attributes["tag"]], reasons=["build context changed"],
                      forces_replacement=["content_hash"])
    same_source = prev is not None and {k: prev.attributes.get(k) for k in attrs if k != "tag"} == {
        k: v for k, v in attrs.items() if k != "tag"}
    reasons = ["image is no longer on the host"] if same_source else []
    if attrs["source"] == "image":
        reasons.append(f"{attrs['ref']} is not on host {app.host}: it will be pulled")
    return Change(address=address, type="image", action=Action.CREATE, before=before, after=attrs, reasons=reasons)


def _diff_container(
    address: Address,
    attrs: dict[str, Any],
    prev: ResourceState | None,
    found: list[ObservedContainer],
    image_change: Change,
    obs: Observation,
) -> tuple[Change, list[Change]]:
    key = str(address)
    before = prev.attributes if prev else None
    if found and not (prev and any(c.id == prev.id for c in found)):
        before = found[0].as_before()  # berth has no record of it: say what the host has
    # Keep the container state knows; any other one claiming the address goes.
    found = sorted(found, key=lambda c: not (prev and c.id == prev.id))
    current, extras = (found[0], found[1:]) if found else (None, [])
    extra_changes = [
        Change(address=key, type="container", action=Action.DELETE, before=c.as_before(), ids=[c.id],
               reasons=[f"a second container ({c.name}) claims this address"])
        for c in extras
    ]

    drift: list[str] = []  # what the host changed behind berth's back, said first

    def change(action: Action, reasons: list[str], forces: list[str] = ()) -> Change:
        after = attrs
        if attrs["host_port"] is None and current is not None and action in (Action.NOOP, Action.UPDATE):
            # The port berth picked stays with the container; a new one gets its own.
            # (IPv4 and IPv6 may get different ports: the one recorded, if still published.)
            recorded = (before or {}).get("published_port")
            picked = recorded if recorded in current.host_ports or not current.host_ports else current.host_ports[0]
            after = attrs | {"published_port": picked}
        if action is not Action.NOOP:
            reasons = [*drift, *reasons]
        return Change(address=key, type="container", action=action, before=before, after=after,
                      ids=[current.id] if current else [], reasons=reasons, forces_replacement=list(forces))

    if current is None:
        return change(Action.CREATE, ["container no longer exists on the host"] if prev else []), extra_changes

    known = prev is not None and prev.id == current.id
    if known:
        # What the host shows of its name and limits, where it differs from state
        # (`docker rename`, `docker update` behind berth's back), is what the change
        # starts from: both are put back in place by an update, the container running on.
        before, drift = host_drift(before or {}, current)
    old = before or {}
    old_view, new_view = replace_view(old), replace_view(attrs)
    forced = CONTAINER.changed(old_view, new_view, ChangeClass.REPLACE) if known else []
    # Clearing a limit is not something docker update can do.
    forced += [k for k in CONTAINER.keys(ChangeClass.UPDATE) if known and old.get(k) is not None and attrs.get(k) is None]
    if forced:
        return change(Action.REPLACE, [], forced), extra_changes
    # Secret files live under the app's name; a container renamed in place (after
    # `state mv`) would keep mounting the old app's files, which this apply removes.
    mounted_for = current.labels.get(LABEL_APP)
    if known and attrs.get("secrets") and mounted_for not in (None, address.app):
        return change(Action.REPLACE, [f"its secret files are mounted from app {mounted_for}'s directory"]), extra_changes
    if known and prev.status == "tainted":  # stopped when its readiness failed: tainted says why
        return change(Action.REPLACE, ["tainted: its readiness check failed"]), extra_changes
    if current.state != "running":
        return change(Action.REPLACE, [f"container is {current.state or 'not running'}"]), extra_changes
    label = current.labels.get(LABEL_CONFIG_HASH)
    # A container adopted by `import` carries no berth labels: state's record is its truth.
    if (label is not None or not known) and label != config_hash(attrs) and label not in legacy_config_hashes(attrs):
        why = "container was changed outside berth" if known else "container is not in state and its config differs"
        return change(Action.REPLACE, [why]), extra_changes
    if prev is not None and prev.status == "tainted":
        return change(Action.REPLACE, ["tainted: its readiness check failed"]), extra_changes
    image_id = image_change.ids[0] if image_change.action is Action.NOOP and image_change.ids else None
    if image_id and current.image_id and current.image_id != image_id:
        return change(Action.REPLACE, [f"{attrs['image']} now names image {image_id[7:19]}, "
                                       f"the container runs {current.image_id[7:19]}"]), extra_changes
    rotated = _rotated_secrets(old, attrs) if known else []
    if rotated:
        in_env = sorted(var for var, name in (attrs.get("secret_env") or {}).items() if name in rotated)
        what = f"secret{'s' if len(rotated) > 1 else ''} {', '.join(rotated)} changed"
        if in_env:
            return change(Action.REPLACE, [f"{what}; as environment variable {', '.join(in_env)} it needs a new container"],
                          ["secret_versions"]), extra_changes
        return change(Action.UPDATE, [f"{what}: the container is restarted to read it"]), extra_changes
    if not known:
        # Started by an earlier run that died before recording it: adopt it, then confirm readiness.
        return change(Action.UPDATE, ["container was started by an interrupted run; readiness will be checked"]), extra_changes
    if prev.status == "created":
        return change(Action.UPDATE, ["readiness was never confirmed; it will be checked"]), extra_changes
    if CONTAINER.changed(old, attrs, ChangeClass.REPLACE, ChangeClass.UPDATE, ChangeClass.BERTH):
        return change(Action.UPDATE, []), extra_changes
    return change(Action.NOOP, []), extra_changes


def host_drift(recorded: dict[str, Any], container: ObservedContainer) -> tuple[dict[str, Any], list[str]]:
    """State's attributes with the name and the limits the host shows instead, and a
    reason for each that differs. Limits are compared only when refresh read them."""
    seen, reasons = dict(recorded), []
    if container.name and "name" in recorded and container.name != recorded["name"]:
        seen["name"] = container.name
        reasons.append(f"container was renamed to {container.name} outside berth (renamed back in place)")
    for key, value in (container.limits or {}).items():
        if key in recorded and not _same_limit(value, recorded[key]):
            seen[key] = value
            reasons.append(f"{key} was changed to {_limit_text(key, value)} outside berth (docker update; "
                           "put back in place)")
    return seen, reasons


def _same_limit(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) < 1e-5 * max(1.0, abs(float(b)))


def _limit_text(key: str, value: Any) -> str:
    if value is None:
        return "unlimited"
    return f"{value:g}" if key == "cpus" else f"{value} bytes"


def _rolling(changes: list[Change], apps: dict[str, AppConfig], host: str) -> list[Change]:
    """On a host whose gateway runs, a replaced replica of an app on a free port berth picks
    (deploy = "rolling") is started beside the old one, which the gateway drains once the
    new one is ready: create, then delete."""
    rolled = []
    for change in changes:
        address = change.address
        app = apps.get(address.app)
        shared = set((change.after or {}).get("gpus") or ()) & set((change.before or {}).get("gpus") or ())
        if (change.type == "container" and change.action is Action.REPLACE and address.host == host
                and app is not None and app.host_port is None and not shared):  # shared GPUs: stop first
            change = change.model_copy(update={
                "action": Action.CREATE_THEN_DELETE,
                "reasons": [*change.reasons, "rolling: the new replica serves before the old one is drained"]})
        rolled.append(change)
    return rolled


def _diff_gateway(
    stack: Stack, host: str, prev: ResourceState | None, found: list[ObservedContainer],
    upstreams: dict[str, list[int]] | None, key_digests: dict[str, str] | None = None,
) -> list[Change]:
    """The host's gateway: created with its image and routes; replaced when its image or
    ports change (or it stopped, or was changed outside berth); updated in place (routes
    reloaded, no restart) when the apps it routes to or their replicas' ports change.
    upstreams: the ports it will route to, or None when some are known only after apply."""
    key = Address.gateway(host)
    attrs = gateway.attributes(stack, host, key_digests) | ({"upstreams": upstreams} if upstreams is not None else {})
    before = prev.attributes if prev else None
    if found and not (prev and any(c.id == prev.id for c in found)):
        before = found[0].as_before()
    found = sorted(found, key=lambda c: not (prev and c.id == prev.id))
    current, extras = (found[0], found[1:]) if found else (None, [])
    changes = [Change(address=key, type="gateway", action=Action.DELETE, before=c.as_before(), ids=[c.id],
                      reasons=[f"a second container ({c.name}) claims this address"]) for c in extras]

    def change(action: Action, reasons: list[str], forces: list[str] = ()) -> Change:
        return Change(address=key, type="gateway", action=action, before=before, after=attrs,
                      ids=[current.id] if current else [], reasons=reasons, forces_replacement=list(forces))

    if current is None:
        return [change(Action.CREATE, ["gateway container no longer exists on the host"] if prev else []), *changes]
    known = prev is not None and prev.id == current.id
    old = before or {}
    forced = GATEWAY.changed(old, attrs, ChangeClass.REPLACE) if known else []
    if forced:
        ours = change(Action.REPLACE, [], forced)
    elif current.state != "running":
        ours = change(Action.REPLACE, [f"gateway container is {current.state or 'not running'}"])
    elif current.labels.get(LABEL_CONFIG_HASH) != gateway.config_hash(attrs):
        ours = change(Action.REPLACE, ["gateway container was changed outside berth" if known
                                       else "gateway container is not in state and its config differs"])
    elif prev is not None and prev.status == "tainted":
        ours = change(Action.REPLACE, ["tainted: its routes could not be loaded"])
    elif not known:
        ours = change(Action.UPDATE, ["gateway was started by an interrupted run; its routes will be loaded"])
    elif prev.status == "created":
        ours = change(Action.UPDATE, ["routes were never confirmed loaded; they will be loaded"])
    elif old.get("routes") != attrs["routes"]:
        ours = change(Action.UPDATE, ["routes are reloaded live, without restarting the gateway"])
    elif old.get("api_keys") != attrs.get("api_keys"):
        ours = change(Action.UPDATE, ["API keys changed: loaded live, without restarting the gateway"])
    elif old.get("tls") != attrs.get("tls"):
        ours = change(Action.UPDATE, ["TLS changed: loaded live, without restarting the gateway"])
    elif old.get("drain_timeout") != attrs.get("drain_timeout"):  # the WebSockets' close delay is in the routes
        ours = change(Action.UPDATE, ["drain_timeout changed: routes are reloaded live"])
    elif upstreams is None:
        ours = change(Action.UPDATE, ["replicas change: the routes follow them once they are ready"])
    elif old.get("upstreams") != upstreams:
        ours = change(Action.UPDATE, ["replicas' ports changed: routes are reloaded live"])
    else:
        ours = change(Action.NOOP, [])
    return [ours, *changes]


def _watchers(stack: Stack, state: State, by_address: dict[str, list[ObservedContainer]], destroy: bool) -> list[Change]:
    """The liveness watcher of each host that has a gateway (planner.serving.watcher), and the
    removal of those no longer wanted."""
    from planner.serving import watcher

    changes = []
    for host in ([] if destroy else watcher.hosts(stack)):
        key = Address.watcher(host)
        changes.extend(watcher.diff_watcher(stack, host, state.resources.get(str(key)), by_address.pop(str(key), [])))
    return changes + watcher.orphan_watchers(by_address, state)


def _rotated_secrets(old: dict[str, Any], attrs: dict[str, Any]) -> list[str]:
    """Mounted secrets whose value changed since the container started. Names added or
    removed change the mount set, which replaces the container anyway."""
    before, after = old.get("secret_versions") or {}, attrs.get("secret_versions") or {}
    return sorted(name for name in after if name in before and before[name] != after[name])


def _diff_weights(app: AppConfig, content_hashes: dict[str, str], state: State, obs: Observation) -> list[Change]:
    """Each weights source of the app: nothing to do when its entry is in the host's cache
    (a local directory's key is its content hash, known now; a remote source's is the one
    state recorded for the same request, or one the stack fixes); else fetched (or copied)
    by a step. Entries are never removed (planner.weights.cache)."""
    from planner.weights.cache import REQUEST_KEYS, attributes, hash_key, known_key

    changes = []
    for index, source in enumerate(app.weights):
        address = Address.weights(app.name, index, app.host)
        prev = state.resources.get(str(address))
        before = prev.attributes if prev else None
        fixed = content_hashes.get(hash_key(source)) if source.kind == "dir" else known_key(source)
        wanted = attributes(source, None)
        same_request = prev is not None and all(prev.attributes.get(k) == wanted[k] for k in REQUEST_KEYS)
        recorded = (prev.attributes.get("key") or prev.id or None) if same_request else None
        key = fixed or recorded

        def change(action: Action, reasons: list[str], key: str | None) -> Change:
            return Change(address=address, type="weights", action=action, before=before,
                          after=attributes(source, key), ids=[key] if key else [], reasons=reasons)

        if key is not None and key in obs.weights:
            changes.append(change(Action.NOOP, [], key))
        elif key is not None and key == recorded:
            # Fetched again; a branch may since name another commit: its key is then new.
            changes.append(change(Action.CREATE, [f"cache entry {key[:12]} is no longer on the host"], fixed))
        elif fixed is None:
            what = "copied" if source.kind == "dir" else "fetched"
            changes.append(change(Action.CREATE, [f"{what} on host {app.host}; its cache key is known once "
                                                  "the host resolved the revision"], None))
        else:
            changes.append(change(Action.CREATE, [], fixed))
    return changes


def _diff_secrets(stack: Stack, app: AppConfig, digests: dict[str, str], state: State, obs: Observation) -> list[Change]:
    changes = []
    for name in secret_names(app):
        key = Address.secret_file(app.name, name, app.host)
        attrs = secret_attributes(stack.secrets[name], digests[name])
        prev = state.resources.get(str(key))
        before = prev.attributes if prev else None
        ids = [prev.id] if prev and prev.id else []

        def change(action: Action, reasons: list[str]) -> Change:
            return Change(address=key, type="secret", action=action, before=before, after=attrs, ids=ids, reasons=reasons)

        if (app.name, name) not in obs.secrets:
            changes.append(change(Action.CREATE, ["secret file no longer exists on the host"] if prev else []))
        elif prev is None:
            changes.append(change(Action.CREATE, ["a secret file is on the host but not in state: it is rewritten"]))
        elif prev.attributes.get("value") != attrs["value"]:
            changes.append(change(Action.UPDATE, ["value changed"]))
        elif prev.attributes != attrs:
            changes.append(change(Action.UPDATE, []))
        else:
            changes.append(change(Action.NOOP, []))
    return changes
