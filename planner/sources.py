"""What a plan says about apps read from a platform's own format (Cerebrium, Truss):
where each came from, the values berth resolved from it, and the warnings it earns.

Pure: given the Stack and the hosts' observations, returns the plan's `apps` entries and
warning lines. Warnings: each field berth ignores (one line, as the reader wrote it) and
a mutable base-image tag with what the host has under it. GPUs asked for are placement's
to check (planner.placement), like any app's.
"""

from __future__ import annotations

from typing import Any

from planner.desired import AppConfig, Stack
from providers.base import BUILD_HOST
from providers.types import Observation

PLATFORM_FORMATS = ("(Cerebrium)", "(Truss)")


def is_platform_app(app: AppConfig) -> bool:
    """Read from a platform's format: its origin names the format ("config.yaml (Truss)")."""
    return app.origin.endswith(PLATFORM_FORMATS)


def describe(stack: Stack, observed: dict[str, Observation], *, looked: bool = True,
             ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(apps, warnings) for the plan: one entry per app from a platform's format.
    looked=False (--refresh=false): `observed` is what state recorded, not what the hosts
    have, so an image missing from it is not said to be missing from the host."""
    apps: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for app in stack.apps.values():
        if not is_platform_app(app):
            continue
        # A base image matters on the engine that builds (berth's own, unless build_on =
        # "host"); an image by reference on the host that runs it.
        where = BUILD_HOST if app.build is not None and not app.build.on_host else app.host
        obs = observed.get(where)
        seen_there = looked and obs is not None
        ref = app.build.base if app.build else app.image
        found = obs.image_for_ref(ref) if obs is not None and ref else None
        apps[app.name] = _entry(app, ref, found)
        warnings += [f"app {app.name}: ignored {entry}" for entry in app.ignored]
        if ref and _mutable(ref):
            what = "base image" if app.build else "image"
            if found is not None:
                seen = f"host {where} has it as {found.id[:19]}" + (f" ({found.digests[0]})" if found.digests else "")
                tail = "berth builds on that image" if app.build else "berth runs that image"
            elif seen_there:
                seen = f"it is not on host {where} and will be pulled"
                tail = "each pull may bring a different image"
            else:
                seen = f"berth did not look whether host {where} has it (--refresh=false)"
                tail = "a pull may bring a different image each time"
            warnings.append(f"app {app.name}: {what} {ref} is a mutable tag: {seen}; {tail}. "
                            "Pin a digest (NAME@sha256:...) to be exact.")
        elif ref and found is None and app.build and seen_there:
            warnings.append(f"app {app.name}: base image {ref} is not on host {where}: the build will pull it")
    return apps, warnings


def _mutable(ref: str) -> bool:
    """A tag that names whatever was pushed last: `:latest`, or no tag at all."""
    if "@" in ref:
        return False
    last = ref.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")


def _entry(app: AppConfig, ref: str | None, found: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "origin": app.origin,
        "image": app.image,
        "build": {"context": app.build.context, "dockerfile": app.build.dockerfile, "base": app.build.base}
        if app.build else None,
        "image_id": found.id if found is not None else None,  # of the image (or base) the host has now
        "image_digests": list(found.digests) if found is not None else [],
        "command": list(app.command) if app.command is not None else None,
        "port": app.port,
        "host_port": app.host_port,
        "replicas": app.replicas,
        "readiness": app.readiness,
        "liveness": app.liveness,
        "readiness_timeout": app.readiness_timeout,
        "probe_timing": dict(app.probe_timing),
        "env": dict(app.env),
        "cpus": app.cpus,
        "memory": app.memory,
        "gpus": app.gpus,
        "gpu_type": app.gpu_type,
        "secrets": list(app.secrets),
        "predict": app.predict,
        "predict_concurrency": app.predict_concurrency,
        "ignored": list(app.ignored),
    }
    return entry
