"""One command's working set: the loaded stack, its state store, and a provider per host.

The CLI opens a Session, asks it for a plan or an apply, and closes it. Providers are
connected lazily, so commands that only read state never touch a host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.desired import Stack
from planner.plan import Plan
from state.model import State
from state.store import DiskStore

STATE_DIR = ".berth"


def state_dir_for(stack_file: Path, override: str | None) -> Path:
    return Path(override).resolve() if override else stack_file.parent / STATE_DIR


@dataclass
class Session:
    stack: Stack
    state_dir: Path
    store: DiskStore = field(init=False)
    _providers: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.store = DiskStore(self.state_dir / "state")

    @property
    def providers(self) -> dict[str, Any]:
        """The providers opened so far (plan opens those it reads)."""
        if not self._providers:
            self.provider("local")
        return self._providers

    def provider(self, host: str) -> Any:
        """The provider of one host, opened on first use; SSH hosts connect lazily."""
        if host not in self._providers:
            if host == "local":
                from providers.docker_engine import local_engine

                self._providers[host] = local_engine()
            else:
                from providers.ssh_host import SshHost, SshTarget

                config = self.stack.hosts[host]
                target = SshTarget(**config.model_dump())
                self._providers[host] = SshHost(target, builder=lambda: self.provider("local"))
        return self._providers[host]

    def hosts_to_read(self, state: State | None) -> list[str]:
        """local, every host an app names, hosts state has resources on (what was moved
        away must be removed there), and every SSH host when placement may pick one."""
        hosts = {"local"} | {app.host for app in self.stack.apps.values()}
        if state is not None:
            hosts |= {r.host for r in state.resources.values() if r.host in self.stack.hosts}
        if any(app.host_auto for app in self.stack.apps.values()):
            hosts |= set(self.stack.hosts)
        order = ["local", *self.stack.hosts]
        return sorted(hosts, key=lambda h: order.index(h) if h in order else len(order))

    def plan(self, state: State | None, *, destroy: bool = False) -> Plan:
        from planner.diff import diff
        from planner.refresh import content_hashes, gpu_inventories, observe_all

        self._check_hosts_still_defined(state)
        memo = self._memo()
        try:
            hashes = {} if destroy else content_hashes(self.stack, memo)
        finally:
            if memo is not None:
                memo.close()
        providers = {host: self.provider(host) for host in self.hosts_to_read(state)}
        observed = observe_all(providers, self.stack.name)
        stack, gpus = self.stack, None
        if not destroy and any(app.gpus for app in stack.apps.values()):
            stack, gpus = self._place(state, providers, gpu_inventories)
        return diff(stack, state, observed, hashes, destroy=destroy, gpus=gpus)

    def _check_hosts_still_defined(self, state: State | None) -> None:
        """Resources on a host the file no longer defines cannot be reached, so neither
        planned for nor removed: refuse, rather than plan "no changes" and leave them."""
        from planner.diagnostics import Diagnostic, DiagnosticsError

        gone: dict[str, list[str]] = {}
        for address, resource in (state.resources if state is not None else {}).items():
            if resource.host != "local" and resource.host not in self.stack.hosts:
                gone.setdefault(resource.host, []).append(address)
        if gone:
            raise DiagnosticsError([Diagnostic(
                f"the state has {len(addresses)} resource{'s' if len(addresses) != 1 else ''} on host {host} "
                f"({', '.join(sorted(addresses)[:3])}{', ...' if len(addresses) > 3 else ''}), but "
                f"the stack file no longer defines [hosts.{host}]",
                file=Path(self.stack.file).name,
                detail=f"put [hosts.{host}] back so that berth can reach the host and remove them "
                       f"(remove its apps and apply, or destroy); then delete the table")
                for host, addresses in sorted(gone.items())])

    def _place(self, state: State | None, providers: dict[str, Any], inventories_of: Any) -> tuple[Stack, Any]:
        """Assign GPUs (refusing what cannot be met) and settle the host of apps that name none."""
        from planner.placement import place, previous_assignment

        apps = list(self.stack.apps.values())
        wanted = {app.host for app in apps if app.gpus and not app.host_auto}
        candidates = list(self.stack.hosts) + ["local"]
        if any(app.host_auto and app.gpus for app in apps):
            wanted |= set(candidates)
        inventories = inventories_of({h: providers[h] for h in wanted if h in providers})
        placement = place(apps, inventories, previous_assignment(state.resources if state else {}), candidates)
        resolved = {name: app.model_copy(update={"host": placement.hosts[name]}) if name in placement.hosts else app
                    for name, app in self.stack.apps.items()}
        return self.stack.model_copy(update={"apps": resolved}), placement.devices

    def _memo(self) -> Any:
        """Per-file content hashes, kept between runs; a cache, so failing to open it
        only costs speed."""
        try:
            import diskcache

            return diskcache.Cache(str(self.state_dir / "cache"), size_limit=256 * 2**20)
        except Exception:
            return None

    def apply(self, plan: Plan, state: State, *, parallelism: int, stop: threading.Event, emit: Any) -> Any:
        from planner.apply import apply_plan

        from state.address import Address

        hosts = {"local"} | {Address.parse(c.address).host for c in plan.changes}
        providers = {host: self.provider(host) for host in sorted(hosts)}
        return apply_plan(plan, self.store, state, providers, parallelism=parallelism, stop=stop, emit=emit)

    def close(self) -> None:
        self._write_stats()
        for provider in self._providers.values():
            provider.close()
        self.store.close()

    def _write_stats(self) -> None:
        """BERTH_SSH_STATS=FILE: per SSH host, connections and channels opened and image
        bytes sent, as JSON (the fan-out benchmark reads it)."""
        import json
        import os

        path = os.environ.get("BERTH_SSH_STATS")
        if path:
            stats = {h: p.stats() for h, p in self._providers.items() if hasattr(p, "stats")}
            with open(path, "w") as f:
                json.dump(stats, f, indent=2)
