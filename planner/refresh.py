"""Refresh: read every host the stack touches (one batched query each, in parallel) and
hash the build contexts, producing the inputs diff needs."""

from __future__ import annotations

from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor

from planner.contexthash import context_hash
from planner.desired import Stack
from planner.diagnostics import Diagnostic, DiagnosticsError
from providers.base import Provider
from providers.types import Observation, ProviderError


def observe_all(providers: dict[str, Provider], stack: str) -> dict[str, Observation]:
    if len(providers) == 1:
        (host, provider), = providers.items()
        try:
            return {host: provider.observe(stack)}
        except ProviderError as err:
            raise DiagnosticsError([Diagnostic(str(err))]) from None
    with ThreadPoolExecutor(max_workers=min(16, len(providers))) as pool:
        futures = {host: pool.submit(p.observe, stack) for host, p in providers.items()}
    observed, errors = {}, []
    for host, future in futures.items():
        try:
            observed[host] = future.result()
        except ProviderError as err:
            errors.append(Diagnostic(str(err)))
    if errors:
        raise DiagnosticsError(errors)
    return observed


def gpu_inventories(providers: dict[str, Provider]) -> dict[str, tuple]:
    """Each host's GPUs (nvidia-smi, one command per host), in parallel."""
    if not providers:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(providers))) as pool:
        futures = {host: pool.submit(p.gpus) for host, p in providers.items()}
    found, errors = {}, []
    for host, future in futures.items():
        try:
            found[host] = future.result()
        except ProviderError as err:
            errors.append(Diagnostic(str(err)))
    if errors:
        raise DiagnosticsError(errors)
    return found


def content_hashes(stack: Stack, memo: MutableMapping[str, str] | None) -> dict[str, str]:
    hashes = {}
    for app in stack.apps.values():
        if app.build is not None:
            try:
                hashes[app.name] = context_hash(app.build, memo)
            except OSError as err:
                raise DiagnosticsError([Diagnostic(
                    f"cannot read the build context of app {app.name}: {err}", file=stack.file,
                    key=f"apps.{app.name}.build")]) from None
    return hashes
