"""Named volumes (`volume.NAME@HOST`): which the stack wants on each host, what a plan
does with them, and the check that the host paths apps bind-mount exist.

A named volume is one per (name, host) that some app on that host mounts; its Docker
volume is berth-STACK-NAME, labelled with the stack and the address. Data outlives
containers, as Compose's volumes outlive `down`: a replace, an apply and `destroy` keep
it; only `destroy --volumes` removes it. A volume no app mounts any more is kept too
(Compose keeps them until `down -v`), shown in the plan as kept: an app's volumes line
removed by mistake must not delete a model cache or a database.
"""

from __future__ import annotations

from planner.desired import Stack
from planner.diagnostics import Diagnostic, DiagnosticsError
from planner.plan import Action, Change
from planner.resources import mounted_volumes, volume_attributes
from providers.types import LABEL_ADDRESS, Observation
from state.address import Address, ResourceKind
from state.model import State

KEPT = "kept: {address} (destroy --volumes removes it)"


def wanted(stack: Stack) -> dict[Address, dict]:
    """Each named volume some app mounts, per host, with its attributes; file order."""
    found: dict[Address, dict] = {}
    for app in stack.apps.values():
        for name in mounted_volumes(app):
            found.setdefault(Address.named_volume(name, app.host), volume_attributes(stack.name, name))
    return found


def diff_volumes(stack: Stack, state: State, observed: dict[str, Observation], *, destroy: bool,
                 remove_volumes: bool) -> list[Change]:
    """Create what is wanted and missing (or on the host but not in state: adopted, its
    data kept); keep what is no longer wanted, unless a destroy with remove_volumes."""
    desired = {} if destroy else wanted(stack)
    on_host: dict[Address, str] = {}
    for host, obs in observed.items():
        for volume in obs.volumes:
            text = volume.labels.get(LABEL_ADDRESS, "")
            if text.startswith("volume."):
                on_host[Address.parse(text)] = volume.name
    recorded = {r.address: r for r in state.resources.values() if r.type == ResourceKind.VOLUME}
    changes = []
    for address, attrs in desired.items():
        prev = recorded.get(address)
        before = prev.attributes if prev else None
        if address in on_host and prev is not None:
            changes.append(Change(address=address, type="volume", action=Action.NOOP, before=before, after=attrs,
                                  ids=[on_host[address]]))
        else:
            reasons = (["on the host but not in state: adopted, its data kept"] if address in on_host
                       else ["volume no longer exists on the host"] if prev else [])
            changes.append(Change(address=address, type="volume", action=Action.CREATE, before=before, after=attrs,
                                  reasons=reasons))
    for address in sorted(set(on_host) - set(desired), key=Address.sort_key):
        prev = recorded.get(address)
        before = prev.attributes if prev else {"name": on_host[address]}
        if destroy and remove_volumes:
            changes.append(Change(address=address, type="volume", action=Action.DELETE, before=before,
                                  ids=[on_host[address]]))
            continue
        why = KEPT.format(address=address) if destroy else \
            f"no app mounts it; {KEPT.format(address=address)}"
        changes.append(Change(address=address, type="volume", action=Action.NOOP, before=before, after=before,
                              ids=[on_host[address]], reasons=[why]))
    return changes


def host_paths(stack: Stack) -> dict[str, list[tuple[str, str, int]]]:
    """Per host, the host directories apps bind-mount: (path, app, index in volumes)."""
    found: dict[str, list[tuple[str, str, int]]] = {}
    for app in stack.apps.values():
        for index, mount in enumerate(app.volumes):
            if not mount.named:
                found.setdefault(app.host, []).append((mount.source, app.name, index))
    return found


def check_host_paths(stack: Stack, missing_on: dict[str, list[str]]) -> None:
    """A DiagnosticsError naming the file, key and line of each bind mount whose host
    path `missing_on[host]` lists: Docker would refuse the container at start."""
    problems = []
    for host, entries in host_paths(stack).items():
        missing = set(missing_on.get(host, ()))
        for path, app_name, index in entries:
            if path not in missing:
                continue
            app = stack.apps[app_name]
            key = f"volumes[{index}]"
            problems.append(Diagnostic(
                f"host path {path} does not exist on host {host}; create it there, or mount a named volume",
                file=app.origin, key=f"apps.{app_name}.{key}", line=app.lines.get(key)))
    if problems:
        raise DiagnosticsError(problems)
