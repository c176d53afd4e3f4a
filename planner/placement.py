"""GPU placement: which host each GPU app runs on, and which devices each container gets.

Pure: apps, the hosts' GPU inventories and the previous assignment (from state) in; a
Placement out, or a DiagnosticsError naming the host, the apps and the counts when the
request cannot be met (more GPUs than a host has, or a type it lacks). What holds:
- every container of an app with `gpus = N` gets N distinct devices of its host, of the
  app's accelerator type when it names one; no device is given to two containers;
- a container keeps its previous devices when its host, count and type are unchanged
  and those devices still exist and are free, so an apply moves nothing that need not move;
- new assignments take the lowest free indexes, apps in file order, typed requests first
  (so an untyped app does not take the only GPU of the type another app needs);
- an app with no host in the file (host_auto) goes to its previous host if it still
  fits there, else to the first host in the stack's order where every replica fits;
- what no container is given stays spare: a replaced GPU replica gets spare devices of
  its model for its new container, which then starts while the old one serves
  (start_first); with none spare the old one stops first, and the plan says so.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from planner.desired import AppConfig
from planner.diagnostics import Diagnostic, DiagnosticsError
from planner.plan import Action, Change
from providers.gpus import Gpu


@dataclass(frozen=True)
class Placement:
    hosts: dict[str, str] = field(default_factory=dict)  # app -> host, for GPU apps
    devices: dict[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)  # (app, replica) -> indexes
    spare: dict[str, tuple[Gpu, ...]] = field(default_factory=dict)  # host -> devices no container is given
    inventories: dict[str, tuple[Gpu, ...]] = field(default_factory=dict)


NO_FREE_GPU = "no free GPU for a start-first replace: the app is down while it loads"


def matches(gpu: Gpu, gpu_type: str | None) -> bool:
    """`H100` matches "NVIDIA H100 80GB HBM3" (a whole word, any case); `L4` not "L40S".
    A type of several words, as Truss and Cerebrium spell them (`A100_80GB`,
    `RTX_PRO_6000`), matches when each word is in the name: "NVIDIA A100-SXM4-80GB"."""
    if gpu_type is None:
        return True
    name = gpu.name.lower()
    words = [w for w in re.split(r"[_\s-]+", gpu_type.lower()) if w]
    return bool(words) and all(
        re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", name) is not None for word in words)


def describe(gpus: tuple[Gpu, ...]) -> str:
    """"2 × NVIDIA H100 80GB HBM3, 1 × NVIDIA L4" or "no GPUs"."""
    if not gpus:
        return "no GPUs"
    return ", ".join(f"{n} × {name}" for name, n in Counter(g.name for g in gpus).items())


def _each(app: AppConfig) -> str:
    """"2 GPUs", "1 H100 × 3 replicas"."""
    each = f"{app.gpus} {app.gpu_type or 'GPU'}{'s' if app.gpus > 1 and not app.gpu_type else ''}"
    return each + (f" × {app.replicas} replicas" if app.replicas > 1 else "")


def _asks(app: AppConfig) -> str:
    return f"{app.name} ({_each(app)})"


def place(
    apps: list[AppConfig],
    inventories: dict[str, tuple[Gpu, ...]],
    previous: dict[tuple[str, int], tuple[str, tuple[str, ...]]],
    host_order: list[str],
) -> Placement:
    """previous: (app, replica) -> (host, devices) as state recorded them. host_order:
    the hosts an app without a host may go to, in order of preference."""
    wanting = [a for a in apps if a.gpus > 0]
    free = {host: [g.index for g in gpus] for host, gpus in inventories.items()}
    by_index = {host: {g.index: g for g in gpus} for host, gpus in inventories.items()}
    placement = Placement()
    problems: list[Diagnostic] = []

    def kept(app: AppConfig, host: str, available: list[str]) -> dict[int, tuple[str, ...]]:
        """The replicas of app that can keep their previous devices on host."""
        chosen: dict[int, tuple[str, ...]] = {}
        for index in range(app.replicas):
            prev_host, devices = previous.get((app.name, index), ("", ()))
            if (prev_host == host and len(devices) == app.gpus and all(
                    d in available and matches(by_index[host][d], app.gpu_type) for d in devices)):
                chosen[index] = tuple(devices)
                available[:] = [d for d in available if d not in devices]
        return chosen

    def fill(app: AppConfig, host: str, available: list[str], chosen: dict[int, tuple[str, ...]]) -> bool:
        """Lowest free devices for the replicas not yet chosen; False if they run out."""
        for index in range(app.replicas):
            if index in chosen:
                continue
            pick = [d for d in available if matches(by_index[host][d], app.gpu_type)][: app.gpus]
            if len(pick) < app.gpus:
                return False
            chosen[index] = tuple(pick)
            available[:] = [d for d in available if d not in pick]
        return True

    def take(app: AppConfig, host: str, chosen: dict[int, tuple[str, ...]]) -> None:
        placement.hosts[app.name] = host
        for index, devices in chosen.items():
            placement.devices[(app.name, index)] = devices
            free[host] = [d for d in free[host] if d not in devices]

    # Pinned apps, per host: previous devices kept first (stability), then typed requests,
    # then untyped. Should kept devices block a fit, the host is assigned afresh.
    pinned = [a for a in wanting if not a.host_auto]
    for host in dict.fromkeys(a.host for a in pinned):
        gpus = inventories.get(host, ())
        group = []
        for app in (a for a in pinned if a.host == host):
            if app.gpu_type and not any(matches(g, app.gpu_type) for g in gpus):
                problems.append(Diagnostic(
                    f"app {app.name} asks for accelerator {app.gpu_type}, but host {host} has none "
                    f"(it has {describe(gpus)})", file=app.origin, key=f"apps.{app.name}", line=_line(app)))
            else:
                group.append(app)
        failed: list[AppConfig] = []
        for keep in (True, False):
            available = list(free.get(host, []))
            chosen = {app.name: kept(app, host, available) if keep else {} for app in group}
            failed = [app for app in sorted(group, key=lambda a: a.gpu_type is None)
                      if not fill(app, host, available, chosen[app.name])]
            if not failed:
                for app in group:
                    take(app, host, chosen[app.name])
                break
        if failed:
            asked = sum(a.gpus * a.replicas for a in group)
            problems.append(Diagnostic(
                f"host {host} has {len(gpus)} GPU{'s' if len(gpus) != 1 else ''} ({describe(gpus)}), but apps "
                f"{', '.join(_asks(a) for a in group)} ask for {asked}"
                + (f"; {', '.join(a.name for a in failed)} cannot be placed" if len(group) > 1 else ""),
                file=group[0].origin, key=f"apps.{failed[0].name}", line=_line(failed[0])))

    # Apps without a host: their previous host if they still fit, else the first that fits.
    for app in (a for a in wanting if a.host_auto):
        before = previous.get((app.name, 0), ("", ()))[0]
        order = [h for h in dict.fromkeys([before, *host_order]) if h in inventories]
        for host in order:
            available = list(free[host])
            chosen = kept(app, host, available) if host == before else {}
            if fill(app, host, available, chosen):
                take(app, host, chosen)
                break
        else:
            seen = "; ".join(f"{h} has {describe(inventories[h])}"
                             + (f" ({len(inventories[h]) - len(free[h])} taken)" if len(free[h]) < len(inventories[h]) else "")
                             for h in host_order if h in inventories)
            problems.append(Diagnostic(
                f"app {app.name} asks for {_each(app)} and names no host, but no host "
                f"has them free: {seen or 'no hosts defined'}", file=app.origin, key=f"apps.{app.name}",
                line=_line(app)))
    if problems:
        raise DiagnosticsError(problems)
    for host, indexes in free.items():
        placement.spare[host] = tuple(by_index[host][d] for d in indexes)
    placement.inventories.update(inventories)
    return placement


def _line(app: AppConfig) -> int | None:
    """The line of the key that asked for the GPUs (the loaders record it in app.lines)."""
    return app.lines.get("gpu_type") or app.lines.get("gpus")


def start_first(changes: list[Change], placement: Placement) -> list[Change]:
    """Replaced GPU replicas on a free port get spare devices of the same model for their
    new container, so it starts beside the old one (planner.steps.start_first) and the
    app serves while the new one loads; the devices are taken in plan order, each given
    once. One that finds none keeps its devices, and so stops first: its plan says so."""
    pool = {host: list(gpus) for host, gpus in placement.spare.items()}
    out = []
    for change in changes:
        after, before = change.after or {}, change.before or {}
        wanted = list(after.get("gpus") or ())
        if (change.type != "container" or change.action is not Action.REPLACE or not wanted
                or after.get("host_port") is not None or after.get("network_mode") == "host"
                or not set(wanted) & set(before.get("gpus") or ())):
            out.append(change)
            continue
        host = change.address.host
        names = {g.index: g.name for g in placement.inventories.get(host, ())}
        models = {names.get(d) for d in wanted}
        pick = [g for g in pool.get(host, []) if g.name in models][: len(wanted)]
        if len(pick) < len(wanted):
            out.append(change.model_copy(update={"reasons": [*change.reasons, NO_FREE_GPU]}))
            continue
        pool[host] = [g for g in pool[host] if g not in pick]
        given = [g.index for g in pick]
        out.append(change.model_copy(update={
            "after": after | {"gpus": given},
            "reasons": [*change.reasons, f"start-first: the new replica gets free GPU{'s' if len(given) > 1 else ''} "
                                         f"{', '.join(given)} while the old one serves"]}))
    return out


def check_cpus(apps: list[AppConfig], counts: dict[str, int | None],
               memory: dict[str, int | None] | None = None) -> None:
    """Refuse, before anything is touched, an app whose `cpus` is more than its host has:
    Docker refuses such a container at create ("range of CPUs is from 0.01 to N"), which
    would fail the apply half-way; and an app that needs (needs_cpus, needs_memory) more
    CPUs or memory than its host has. counts, memory: each host's CPUs and bytes (None:
    unknown, not checked)."""
    problems = []
    memory = memory or {}
    for app in apps:
        total = counts.get(app.host)
        if app.cpus is not None and total is not None and app.cpus > total:
            problems.append(Diagnostic(
                f"app {app.name} asks for {app.cpus:g} CPUs, but host {app.host} has {total}",
                file=app.origin, key=_cpus_key(app),
                detail=f"Docker refuses a container more CPUs than its host has; set at most {total}"))
        elif app.needs_cpus is not None and total is not None and app.needs_cpus > total:
            problems.append(Diagnostic(
                f"app {app.name} needs {app.needs_cpus:g} CPUs, but host {app.host} has {total}",
                file=app.origin, key=_cpus_key(app), detail="run it on a host with more CPUs"))
        host_memory = memory.get(app.host)
        if app.needs_memory is not None and host_memory is not None and app.needs_memory > host_memory:
            problems.append(Diagnostic(
                f"app {app.name} needs {app.needs_memory / 1024**3:.3g} GiB of memory, but host {app.host} has "
                f"{host_memory / 1024**3:.3g} GiB", file=app.origin,
                key="resources.memory" if app.origin.endswith("(Truss)") else f"apps.{app.name}",
                detail="run it on a host with more memory"))
    if problems:
        raise DiagnosticsError(problems)


def check_architectures(apps: list[AppConfig], arches: dict[str, str | None], here: str | None,
                        gateway_hosts: set[str] = frozenset(), gateway_key: str = "gateway.port",
                        stack_file: str | None = None) -> None:
    """Refuse, before anything is touched, an image this machine would build for a host
    whose engine runs another CPU architecture (an arm64 GPU host behind an amd64
    laptop): it would not start there ("exec format error"), and the apply would fail
    half-way. apps: those built here for an SSH host; gateway_hosts: the SSH hosts that
    get a gateway, whose image is built here too. arches: each host's, here: this
    machine's (None: unknown, not checked)."""
    problems = []
    for app in apps:
        arch = arches.get(app.host)
        if here is not None and arch is not None and arch != here:
            problems.append(Diagnostic(
                f"app {app.name} would be built on this machine ({here}) for host {app.host}, whose engine "
                f"runs {arch}: its image would not start there", file=app.origin, key=f"apps.{app.name}.build",
                detail=f'build it on the host: build_on = "host" in [hosts.{app.host}] or on the app; or run an '
                       f"image built for {arch} with image ="))
    for host in sorted(gateway_hosts):
        arch = arches.get(host)
        if here is not None and arch is not None and arch != here:
            problems.append(Diagnostic(
                f"the gateway on host {host} would be built on this machine ({here}), but the host's engine "
                f"runs {arch}", file=stack_file, key=gateway_key,
                detail=f"berth builds its gateway's image here only; run berth from a {arch} machine for that "
                       "host, or serve its apps without the gateway"))
    if problems:
        raise DiagnosticsError(problems)


def _cpus_key(app: AppConfig) -> str:
    """The key the user wrote the CPU count under, in the app's own format."""
    if app.origin.endswith("(Cerebrium)"):
        return "hardware.cpu"
    if app.origin.endswith("(Truss)"):
        return "resources.cpu"
    return f"apps.{app.name}.cpus"


def previous_assignment(resources: dict[str, object]) -> dict[tuple[str, int], tuple[str, tuple[str, ...]]]:
    """(app, replica) -> (host, devices) from a state's resources."""
    from state.address import Address

    found = {}
    for key, resource in resources.items():
        address = Address.parse(key)
        devices = (getattr(resource, "attributes", {}) or {}).get("gpus")
        if address.kind == "container" and devices:
            found[(address.app, address.index)] = (address.host, tuple(devices))
    return found


def recorded_placement(apps: list[AppConfig], previous: dict[tuple[str, int], tuple[str, tuple[str, ...]]]) -> Placement:
    """The placement state records, for `plan --refresh=false`, which asks no host for its
    GPUs: each replica keeps its host and devices. An app whose replicas state does not
    place with the count asked cannot be planned without reading the hosts."""
    placement = Placement()
    unplaced = []
    for app in (a for a in apps if a.gpus > 0):
        recorded = [previous.get((app.name, index)) for index in range(app.replicas)]
        hosts = {entry[0] for entry in recorded if entry}
        if (any(entry is None or len(entry[1]) != app.gpus for entry in recorded) or len(hosts) != 1
                or (not app.host_auto and hosts != {app.host})):
            unplaced.append(app.name)
            continue
        placement.hosts[app.name] = hosts.pop()
        for index, (_host, devices) in enumerate(recorded):
            placement.devices[(app.name, index)] = devices
    if unplaced:
        raise DiagnosticsError([Diagnostic(
            f"app {name} asks for GPUs that state does not record as placed; plan with refresh "
            f"(without --refresh=false) so that berth can read the hosts' GPUs", key=f"apps.{name}")
            for name in unplaced])
    return placement
