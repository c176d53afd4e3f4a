"""The plan pipeline: Stack x State x hosts -> Plan (plan), and Plan -> hosts and state
(apply), with refresh and the saved-plan checks: what a command asks of the engine.

plan() reads the secret sources and the build contexts, refreshes from the hosts (or from
state alone), places GPUs, diffs, then forces replacements and narrows to the targets. The
caller fills a Context and PlanOpts and renders what comes back: nothing here prints.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.desired import Stack, built_where
from planner.plan import Plan
from providers.base import LOCAL_HOST
from state.model import State

if TYPE_CHECKING:
    from planner.apply import ApplyResult
    from planner.drift import Finding
    from planner.events import Emit
    from planner.savedplan import SavedPlan
    from planner.secrets import SecretValues
    from providers.base import Provider
    from providers.types import Observation
    from state.store import StateStore



@dataclass
class Context:
    """What the engine works with for one command. `provider` opens a host's provider
    on first use (so a plan from state alone opens none); `secrets` reads each value once
    per command; `cache_dir` keeps per-file content hashes between runs (None: no memo).
    `stacks_beside`: other stacks whose state the same state directory keeps, looked up
    only for a stack file that declares no apps (an emptied file names no stack)."""

    stack: Stack
    provider: Callable[[str], Provider]
    secrets: SecretValues
    cache_dir: Path | None = None
    stacks_beside: Callable[[], list[str]] = lambda: []


@dataclass(frozen=True)
class PlanOpts:
    """How to plan (Terraform's PlanOpts). refresh=False contacts no host: the hosts are
    taken to be as state records them. `hashes` overrides the build contexts' content
    hashes (rollback to images an earlier apply built). `replace` and `targets` are
    applied after diff, in that order (planner.targeting)."""

    destroy: bool = False
    refresh: bool = True
    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    hashes: Mapping[str, str] | None = None
    remove_volumes: bool = False  # a destroy removes the named volumes too (`destroy --volumes`)


def declared_hosts(stack: Stack) -> tuple[str, ...]:
    """The hosts the stack can reach: the local engine, then each [hosts.NAME]."""
    return (LOCAL_HOST, *stack.hosts)


def hosts_to_read(stack: Stack, state: State | None) -> list[str]:
    """local, every host an app names, hosts state has resources on (what was moved
    away must be removed there), and every SSH host when placement may pick one."""
    hosts = {LOCAL_HOST} | {app.host for app in stack.apps.values()}
    if state is not None:
        hosts |= {r.host for r in state.resources.values() if r.host in stack.hosts}
    if any(app.host_auto for app in stack.apps.values()):
        hosts |= set(stack.hosts)
    order = list(declared_hosts(stack))
    return sorted(hosts, key=lambda h: order.index(h) if h in order else len(order))


def plan(ctx: Context, state: State | None, opts: PlanOpts = PlanOpts()) -> Plan:
    """Diff, then force replacements, then narrow to the targets: what plan shows and
    apply runs."""
    from planner.targeting import force_replace, select

    made = diff_plan(ctx, state, opts)
    if opts.replace:
        made = force_replace(made, list(opts.replace))
    if opts.targets:
        made = select(made, list(opts.targets))
    return made


def diff_plan(ctx: Context, state: State | None, opts: PlanOpts = PlanOpts()) -> Plan:
    """Diff the stack against state and the hosts (targets and replacements aside)."""
    from planner.diff import diff
    from planner.refresh import observe_from_state
    from planner.resources import secret_names

    stack, destroy = ctx.stack, opts.destroy
    check_hosts_still_defined(stack, state)  # first: without the host, not even destroy reaches them
    if not destroy:
        check_declares_apps(stack, state, ctx.stacks_beside)
    # Every source is read before any host is asked anything; a missing one stops
    # the plan here. Destroy needs no values.
    names = [] if destroy else [*(n for app in stack.apps.values()
                                  for n in (*secret_names(app), *(app.build.secrets if app.build else ()))),
                                *stack.gateway_api_keys, *(stack.gateway_tls_secrets or ())]
    digests, unread = _secret_digests(ctx, state, names, refresh=opts.refresh)
    hashes = dict(opts.hashes) if opts.hashes is not None else ({} if destroy else content_hashes(ctx))
    if opts.refresh:
        observed = observe(ctx, state)
    else:
        observed = observe_from_state(state, stack.name, set(hosts_to_read(stack, state)))
    gpus = placement = None
    if not destroy and any(app.gpus for app in stack.apps.values()):
        stack, placement = _place(ctx, state, refresh=opts.refresh)
        gpus = placement.devices
    if not destroy and opts.refresh:
        check_host_paths(ctx, stack)
        _check_cpus(ctx, stack)
        _check_architectures(ctx, stack)
    made = diff(stack, state, observed, hashes, destroy=destroy, secret_digests=digests, gpus=gpus,
                remove_volumes=opts.remove_volumes, placement=placement)
    if destroy:
        return made
    if opts.refresh:
        check_host_ports(ctx, stack, made)
    from planner.sources import describe

    apps, warnings = describe(stack, observed, looked=opts.refresh)
    return made.model_copy(update={"apps": apps, "warnings": [*made.warnings, *unread, *warnings]})


def _secret_digests(ctx: Context, state: State | None, names: list[str], *, refresh: bool) -> tuple[dict[str, str], list[str]]:
    """The digest of each secret's value, and warnings. A plan that contacts hosts reads
    every source (a missing one stops it); --refresh=false, which CI runs without
    credentials, compares what it can read and takes the digest state recorded for a
    source it cannot, with a warning (a secret never applied still needs its source)."""
    if not names:
        return {}, []
    if refresh:
        return ctx.secrets.digests(names), []
    from planner.diagnostics import DiagnosticsError

    digests, unread = ctx.secrets.readable_digests(names)
    recorded = {r.attributes.get("name"): r.attributes.get("value")
                for r in (state.resources.values() if state else ()) if r.type == "secret"}
    missing = [problem for name, problem in unread.items() if not recorded.get(name)]
    if missing:
        raise DiagnosticsError(missing)
    digests |= {name: recorded[name] for name in unread}
    return digests, [f"{problem.summary}; planned with the digest of the value last applied"
                     for name, problem in unread.items()]


def check_host_paths(ctx: Context, stack: Stack) -> None:
    """The host directories apps bind-mount exist on their hosts: one call per host,
    over its own connection (planner.volumes names the file, key and line of each)."""
    from planner.diagnostics import Diagnostic, DiagnosticsError
    from planner.volumes import check_host_paths as report, host_paths
    from providers.types import ProviderError

    missing = {}
    for host, entries in host_paths(stack).items():
        paths = list(dict.fromkeys(path for path, _app, _index in entries))
        try:
            missing[host] = ctx.provider(host).missing_paths(paths)
        except ProviderError as err:
            raise DiagnosticsError([Diagnostic(f"host {host}: cannot check the host paths apps mount: {err}")]) from None
    report(stack, missing)


def check_host_ports(ctx: Context, stack: Stack, plan: Plan) -> None:
    """A fixed host port that a container outside the stack already publishes is refused
    at plan time (Docker would refuse the start halfway through the apply, after a
    stop-first replace had taken the old replica down). Asked only of the hosts where the
    plan starts a container on a fixed port: a plan that starts none costs nothing."""
    from planner.diagnostics import Diagnostic, DiagnosticsError
    from planner.plan import Action
    from planner.serving.gateway import container_name as gateway_name
    from providers.types import ProviderError

    wanted: dict[str, dict[int, str]] = {}
    # The stack's own containers, labelled or not (one adopted by `berth import` carries
    # no labels): what the plan replaces may hold its port until it stops.
    own = {i for change in plan.changes for i in change.ids if i}
    for change in plan.actions:
        if change.after is None or change.action not in (Action.CREATE, Action.REPLACE, Action.CREATE_THEN_DELETE):
            continue
        port = change.after.get("host_port") if change.type == "container" else \
            change.after.get("port") if change.type == "gateway" else None
        if port:
            wanted.setdefault(change.address.host, {})[port] = change.address.app or "the gateway"
    problems = check_shared_gateways(ctx, stack, plan)
    for host, ports in sorted(wanted.items()):
        try:
            taken = ctx.provider(host).ports_taken(stack.name)
        except ProviderError as err:
            raise DiagnosticsError([Diagnostic(f"host {host}: cannot list the ports in use there: {err}")]) from None
        for port, app in sorted(ports.items()):
            shared = app == "the gateway" and port in taken and taken[port][1].lstrip("/") == gateway_name(port)
            if port in taken and taken[port][0] not in own and not shared:
                key = f"apps.{app}.host_port" if app != "the gateway" else stack.gateway_port_key
                problems.append(Diagnostic(
                    f"host port {port} on {host} is already published by container {taken[port][1]}, which is not "
                    f"this stack's: {'app ' + app if app != 'the gateway' else 'the gateway'} cannot start there",
                    file=Path(stack.file).name, key=key,
                    detail="stop that container, or choose another port"))
    if problems:
        raise DiagnosticsError(problems)


def check_shared_gateways(ctx: Context, stack: Stack, plan: Plan) -> list:
    """Where the plan changes the stack's part of a host's shared gateway, the other stacks
    there (their summaries, asked of the gateway) must not clash with it
    (planner.serving.peers). One command per such host; none for a plan that leaves the
    gateways as they are."""
    from planner.diagnostics import Diagnostic
    from planner.plan import Action
    from planner.serving.gateway import LABEL_GATEWAY_PORT
    from planner.serving.gateway import container_name as gateway_name
    from planner.serving.peers import clashes
    from planner.serving.routes import compose
    from providers.types import ProviderError

    problems = []
    for change in plan.actions:
        if change.type != "gateway" or change.after is None or change.action is Action.DELETE:
            continue
        host, provider = change.address.host, ctx.provider(change.address.host)
        name = gateway_name(change.after["port"])
        try:
            running = provider.inspect_container(name)
            if running is not None and LABEL_GATEWAY_PORT not in ((running.get("Config") or {}).get("Labels") or {}):
                problems.append(Diagnostic(
                    f"host {host}: a container named {name} runs there and is not berth's gateway: the gateway "
                    "cannot start", file=Path(stack.file).name, key=stack.gateway_port_key,
                    detail="rename or remove that container, or choose another gateway port"))
                continue
            if running is None or not (running.get("State") or {}).get("Running"):
                continue
            peers = compose(provider, running["Id"], ["show"])
        except (OSError, ProviderError) as err:
            problems.append(Diagnostic(f"host {host}: cannot ask the gateway {name} which stacks it serves: {err}"))
            continue
        problems += clashes(stack, host, peers)
    return problems


def content_hashes(ctx: Context) -> dict[str, str]:
    """Each build context's content hash, by app."""
    from planner.refresh import content_hashes as hash_contexts

    memo = _memo(ctx.cache_dir)
    try:
        return hash_contexts(ctx.stack, memo)
    finally:
        if memo is not None:
            memo.close()


def observe(ctx: Context, state: State | None) -> dict[str, Observation]:
    """What every host berth must read has, in parallel."""
    from planner.refresh import observe_all, secret_hosts, weights_hosts

    providers = {host: ctx.provider(host) for host in hosts_to_read(ctx.stack, state)}
    return observe_all(providers, ctx.stack.name, state, secret_hosts(ctx.stack, state), weights_hosts(ctx.stack))


def check_declares_apps(stack: Stack, state: State | None,
                        stacks_beside: Callable[[], list[str]] = lambda: []) -> None:
    """A stack file with no apps (emptied, truncated, all commented out) while state
    holds resources is far likelier a mistake than a wish to remove everything: refuse
    to plan the destruction; `berth destroy` says it on purpose. An emptied file has lost
    its [stack] name too, so other stacks' state beside it counts as well."""
    from planner.diagnostics import Diagnostic, DiagnosticsError

    if stack.apps:
        return
    if (state is not None and state.resources) or stacks_beside():
        raise DiagnosticsError([Diagnostic("the stack file declares no apps; `berth destroy` removes the stack",
                                           file=Path(stack.file).name)])


def check_hosts_still_defined(stack: Stack, state: State | None) -> None:
    """Resources on a host the file no longer defines cannot be reached, so neither
    planned for nor removed: refuse, rather than plan "no changes" and leave them."""
    from planner.diagnostics import Diagnostic, DiagnosticsError

    declared = declared_hosts(stack)
    gone: dict[str, list[str]] = {}
    for address, resource in (state.resources if state is not None else {}).items():
        if resource.host not in declared:
            gone.setdefault(resource.host, []).append(address)
    if gone:
        raise DiagnosticsError([Diagnostic(
            f"the state has {len(addresses)} resource{'s' if len(addresses) != 1 else ''} on host {host} "
            f"({', '.join(sorted(addresses)[:3])}{', ...' if len(addresses) > 3 else ''}), but "
            f"the stack file no longer defines [hosts.{host}]",
            file=Path(stack.file).name,
            detail=f"put [hosts.{host}] back so that berth can reach the host and remove them "
                   f"(remove its apps and apply, or destroy); then delete the table")
            for host, addresses in sorted(gone.items())])


def _place(ctx: Context, state: State | None, *, refresh: bool) -> tuple[Stack, Any]:
    """Assign GPUs (refusing what cannot be met) and settle the host of apps that name
    none. Without refresh, the devices state records are kept and nothing is asked."""
    from planner.placement import place, previous_assignment, recorded_placement
    from planner.refresh import gpu_inventories

    stack = ctx.stack
    apps = list(stack.apps.values())
    previous = previous_assignment(state.resources if state else {})
    if refresh:
        wanted = {app.host for app in apps if app.gpus and not app.host_auto}
        candidates = list(stack.hosts) + [LOCAL_HOST]
        if any(app.host_auto and app.gpus for app in apps):
            wanted |= set(candidates)
        inventories = gpu_inventories({h: ctx.provider(h) for h in wanted})
        placement = place(apps, inventories, previous, candidates)
    else:
        placement = recorded_placement(apps, previous)
    # A placed app's build_on is settled again for the host it was given.
    resolved = {name: built_where(app.model_copy(update={"host": placement.hosts[name]}), stack.hosts)
                if name in placement.hosts else app for name, app in stack.apps.items()}
    return stack.model_copy(update={"apps": resolved}), placement


def _check_cpus(ctx: Context, stack: Stack) -> None:
    """cpus, and what apps need (needs_cpus, needs_memory), against each host's CPU count
    and memory (the engine's info: one call per host)."""
    from planner.placement import check_cpus

    apps = [app for app in stack.apps.values()
            if app.cpus is not None or app.needs_cpus is not None or app.needs_memory is not None]
    if apps:
        hosts = {app.host for app in apps}
        memory_hosts = {app.host for app in apps if app.needs_memory is not None}
        check_cpus(apps, {host: ctx.provider(host).cpu_count() for host in hosts},
                   {host: ctx.provider(host).memory_total() for host in memory_hosts})


def _check_architectures(ctx: Context, stack: Stack) -> None:
    """What this machine builds for SSH hosts (apps' images, the gateway's) against each
    such host's architecture: the engine's info, one call per host and one here, all at
    once (`docker info` takes the engine tens of milliseconds)."""
    from planner.placement import check_architectures
    from planner.refresh import per_host

    apps = [app for app in stack.apps.values()
            if app.build is not None and not app.build.on_host and app.host != LOCAL_HOST]
    gateway_hosts = ({app.host for app in stack.apps.values() if app.host != LOCAL_HOST}
                     if stack.gateway_port is not None else set())
    hosts = sorted({app.host for app in apps} | gateway_hosts)
    if hosts:
        providers = {host: ctx.provider(host) for host in (*hosts, LOCAL_HOST)}  # opened here, not in threads
        found = per_host(providers, lambda host, provider: provider.architecture())
        here = found.pop(LOCAL_HOST)
        check_architectures(apps, found, here, set(gateway_hosts), stack.gateway_port_key, Path(stack.file).name)


def _memo(cache_dir: Path | None) -> Any:
    """Per-file content hashes, kept between runs; a cache, so failing to open it
    only costs speed."""
    if cache_dir is None:
        return None
    try:
        from state.storage import thread_closing_cache

        return thread_closing_cache(str(cache_dir), size_limit=256 * 2**20)
    except Exception:
        return None


def config_to_record(stack: Stack, opts: PlanOpts) -> dict[str, Any] | None:
    """The configuration an apply made with opts records with its state versions: none
    for a targeted run (it applies part of the configuration, and `rollback` must never
    mistake it for the whole)."""
    from planner.recorded import recorded_config

    return None if opts.targets else recorded_config(stack, destroy=opts.destroy)


def apply(ctx: Context, plan: Plan, store: StateStore, state: State, *, parallelism: int = 10,
          stop: threading.Event | None = None, emit: Emit | None = None,
          config: dict[str, Any] | None = None, note: str) -> ApplyResult:
    """Walk the plan against the hosts, writing state after each step; the caller holds
    the lock. A plan without changes touches no host: it records what the plan found
    (adopted IDs, forgotten resources) and, when it differs from the last, the configuration."""
    from planner.apply import ApplyResult, apply_plan
    from planner.recorder import Recorder, refresh_state

    if not plan.has_changes:
        recorder = Recorder(store, state, note="refresh" if config is None else note, config=config)
        refresh_state(plan, recorder)
        recorder.record_config()
        return ApplyResult(state=recorder.state)
    keep_secret_key(ctx.secrets, plan)
    hosts = {LOCAL_HOST} | {c.address.host for c in plan.changes}
    providers = {host: ctx.provider(host) for host in sorted(hosts)}
    return apply_plan(plan, store, state, providers, parallelism=parallelism, stop=stop,
                      emit=emit if emit is not None else _ignore, config=config, note=note, secrets=ctx.secrets)


def _ignore(event: Any) -> None:
    pass


def keep_secret_key(secrets: SecretValues, plan: Plan) -> None:
    """Save the digest key before anything made with it is recorded or saved (state,
    a saved plan): a later run must compute the same digests."""
    if any(c.after is not None and (c.type == "secret" or (c.type == "gateway" and (c.after.get("api_keys")
                                                                                   or c.after.get("tls", {}).get("versions"))))
           for c in plan.actions):  # the gateway's API keys are recorded as digests too
        secrets.key.save()


def save_plan(ctx: Context, plan: Plan, opts: PlanOpts, path: str) -> None:
    """`plan --out`: the plan with the configuration it was made from and how it was
    narrowed, for `apply FILE`."""
    from planner.recorded import recorded_config
    from planner.savedplan import SavedPlan

    keep_secret_key(ctx.secrets, plan)
    SavedPlan(plan=plan, config=recorded_config(ctx.stack, destroy=opts.destroy),
              targets=list(opts.targets), replace=list(opts.replace)).save(path)


def check_saved(ctx: Context, saved: SavedPlan, state: State | None, where: str) -> None:
    """Refuse a saved plan unless state is the one it was made from and every build it
    holds still builds what was planned (a context whose files changed since would give
    an image carrying the planned hash but other contents)."""
    from planner.plan import Action
    from planner.savedplan import SavedPlanError

    saved.check(state, where)
    builds = [c for c in saved.plan.actions if c.type == "image" and c.action in (Action.CREATE, Action.CREATE_THEN_DELETE)
              and (c.after or {}).get("source") == "build"]
    if not builds:
        return
    hashes = content_hashes(ctx)
    for change in builds:
        app = change.address.app
        if hashes.get(app) != change.after.get("content_hash"):
            raise SavedPlanError(
                f"stale plan: the build context of app {app} ({change.after.get('context')}) changed since the "
                "plan was made. Make a new plan with `berth plan --out`.")


def refresh(ctx: Context, store: StateStore, state: State) -> tuple[list[Finding], State | None]:
    """`berth refresh`: read the hosts, and write into state what is there. The drift
    found, and the state written (None when state already matched)."""
    from planner.drift import drift

    refreshed, findings = drift(state, observe(ctx, state))
    if refreshed.resources == state.resources:
        return findings, None
    return findings, store.write(refreshed, note="refresh")
