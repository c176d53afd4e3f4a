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
    _secrets: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.store = DiskStore(self.state_dir / "state")

    @property
    def secrets(self) -> Any:
        """The stack's secret values (planner.secrets.SecretValues), read once per
        command and kept in memory; the digest key lives in STATE_DIR/secrets.key,
        beside the state store and never in it."""
        if self._secrets is None:
            from planner.secrets import KEY_FILE, SecretKey, SecretValues

            self._secrets = SecretValues(self.stack, SecretKey(self.state_dir / KEY_FILE))
        return self._secrets

    @property
    def providers(self) -> dict[str, Any]:
        """A provider for local and each [hosts.NAME]; SSH hosts connect on first use."""
        for host in ("local", *self.stack.hosts):
            self.provider(host)
        return self._providers

    def provider(self, host: str) -> Any:
        """The provider of one host, opened on first use; SSH hosts connect lazily."""
        if host not in self._providers:
            from providers import open_provider
            from providers.base import BUILD_HOST

            config = self.stack.hosts.get(host)
            self._providers[host] = open_provider(host, config.model_dump() if config else None,
                                                  builder=lambda: self.provider(BUILD_HOST))
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

    def plan(self, state: State | None, *, destroy: bool = False, refresh: bool = True,
             hashes: dict[str, str] | None = None) -> Plan:
        """Diff the stack against state and the hosts. refresh=False contacts no host: the
        hosts are taken to be as state records them. hashes overrides the build contexts'
        content hashes (rollback to images an earlier apply built)."""
        from planner.diff import diff
        from planner.refresh import observe_from_state
        from planner.resources import secret_names

        self._check_hosts_still_defined(state)
        # Every source is read before any host is asked anything; a missing one stops
        # the plan here. Destroy needs no values.
        names = [] if destroy else [n for app in self.stack.apps.values() for n in secret_names(app)]
        digests = self.secrets.digests(names) if names else {}
        if hashes is None:
            hashes = {} if destroy else self.content_hashes()
        if refresh:
            observed = self.observe(state)
        else:
            observed = observe_from_state(state, self.stack.name, set(self.hosts_to_read(state)))
        stack, gpus = self.stack, None
        if not destroy and any(app.gpus for app in stack.apps.values()):
            stack, gpus = self._place(state, refresh=refresh)
        plan = diff(stack, state, observed, hashes, destroy=destroy, secret_digests=digests, gpus=gpus)
        if destroy:
            return plan
        from planner.sources import describe

        apps, warnings = describe(stack, observed)
        return plan.model_copy(update={"apps": apps, "warnings": [*plan.warnings, *warnings]})

    def content_hashes(self) -> dict[str, str]:
        from planner.refresh import content_hashes

        memo = self._memo()
        try:
            return content_hashes(self.stack, memo)
        finally:
            if memo is not None:
                memo.close()

    def observe(self, state: State | None) -> dict[str, Any]:
        """What every host berth must read has, in parallel."""
        from planner.refresh import observe_all, secret_hosts

        providers = {host: self.provider(host) for host in self.hosts_to_read(state)}
        return observe_all(providers, self.stack.name, state, secret_hosts(self.stack, state))

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

    def _place(self, state: State | None, *, refresh: bool) -> tuple[Stack, Any]:
        """Assign GPUs (refusing what cannot be met) and settle the host of apps that name
        none. Without refresh, the devices state records are kept and nothing is asked."""
        from planner.placement import place, previous_assignment, recorded_placement
        from planner.refresh import gpu_inventories

        apps = list(self.stack.apps.values())
        previous = previous_assignment(state.resources if state else {})
        if refresh:
            wanted = {app.host for app in apps if app.gpus and not app.host_auto}
            candidates = list(self.stack.hosts) + ["local"]
            if any(app.host_auto and app.gpus for app in apps):
                wanted |= set(candidates)
            inventories = gpu_inventories({h: self.provider(h) for h in wanted})
            placement = place(apps, inventories, previous, candidates)
        else:
            placement = recorded_placement(apps, previous)
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

    def apply(self, plan: Plan, state: State, *, parallelism: int, stop: threading.Event, emit: Any,
              config: dict[str, Any] | None = None, note: str | None = None) -> Any:
        from planner.apply import apply_plan

        from state.address import Address

        self.keep_secret_key(plan)
        hosts = {"local"} | {Address.parse(c.address).host for c in plan.changes}
        providers = {host: self.provider(host) for host in sorted(hosts)}
        return apply_plan(plan, self.store, state, providers, parallelism=parallelism, stop=stop, emit=emit,
                          config=config, note=note, secrets=self.secrets)

    def keep_secret_key(self, plan: Plan) -> None:
        """Save the digest key before anything made with it is recorded or saved (state,
        a saved plan): a later run must compute the same digests."""
        if any(c.type == "secret" and c.after is not None for c in plan.actions):
            self.secrets.key.save()

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
