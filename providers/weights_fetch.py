"""The weights fetcher run on a host: a short-lived helper container (host network, the
host's weights cache mounted at /cache, the token's secret file read-only) running the
program planner/weights/fetch_script.py sends as `python3 -c`, whose JSON lines say what
it did. HF_ENDPOINT and HF_HUB_DISABLE_XET from berth's own environment are passed on;
the token never is (it is a file), and the container is removed when it ends.
"""

from __future__ import annotations

import json
import os
import secrets as _random
from typing import Any

from providers.types import Progress, ProviderError, summary

CACHE = "/cache"
TOKEN = "/run/berth/token"
# The helper's label; a stopped helper an interrupted run left is removed by the next fetch.
ROLE = {"berth.role": "weights-fetch"}
PASSED_ENV = ("HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


def command(script: str, source: str, allow: list[str], ignore: list[str], token: bool) -> list[str]:
    argv = ["python3", "-c", script, "--cache", CACHE, source]
    argv += [arg for pattern in allow for arg in ("--allow", pattern)]
    argv += [arg for pattern in ignore for arg in ("--ignore", pattern)]
    return argv + (["--token-file", TOKEN] if token else [])


def run(api: Any, host: str, image: str, root: str, script: str, source: str, allow: list[str],
        ignore: list[str], secret_path: str | None, progress: Progress) -> str:
    """Fetch source into root's cache on the host; the entry's key."""
    import docker.errors
    from docker.types import Mount

    mounts = [Mount(target=CACHE, source=root, type="bind")]
    if secret_path is not None:
        mounts.append(Mount(target=TOKEN, source=secret_path, type="bind", read_only=True))
    env = {k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}
    for leftover in api.containers(all=True, filters={"label": [f"{k}={v}" for k, v in ROLE.items()], "status": ["exited", "created", "dead"]}):
        try:  # a fetcher whose berth was interrupted: it finished (or failed) alone
            api.remove_container(leftover["Id"], force=True)
        except docker.errors.APIError:
            pass
    name = f"berth-weights-fetch-{_random.token_hex(4)}"
    try:
        container = api.create_container(
            image=image, name=name, command=command(script, source, allow, ignore, secret_path is not None),
            environment=env, labels=dict(ROLE),
            host_config=api.create_host_config(network_mode="host", mounts=mounts))["Id"]
    except docker.errors.APIError as err:
        raise ProviderError(f"cannot start the weights fetcher on {host}: {summary(err)}") from None
    events: list[dict] = []
    try:
        api.start(container)
        buffered = b""
        for chunk in api.logs(container, stdout=True, stderr=False, stream=True, follow=True):
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                event = _event(line)
                if event is not None:
                    events.append(event)
                    _say(event, host, progress)
        code = api.wait(container).get("StatusCode", 1)
        if code != 0:
            errors = [e.get("message", "") for e in events if e.get("event") == "error"]
            tail = errors[-1] if errors else api.logs(container, stdout=True, stderr=True, tail=5).decode(errors="replace").strip()
            raise ProviderError(f"fetching {source} on {host} failed: {tail or f'exit status {code}'}")
    except docker.errors.APIError as err:
        raise ProviderError(f"the weights fetcher on {host} failed: {summary(err)}") from None
    finally:
        try:
            api.remove_container(container, force=True)
        except docker.errors.APIError:
            pass
    for event in reversed(events):
        if event.get("event") in ("done", "cached") and event.get("key"):
            return event["key"]
    raise ProviderError(f"fetching {source} on {host}: the fetcher said no key")


def _event(line: bytes) -> dict | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def _say(event: dict, host: str, progress: Progress) -> None:
    kind = event["event"]
    if kind == "progress":
        done, total, rate = event.get("done", 0), event.get("total", 0), event.get("rate", 0)
        progress(f"downloaded {done / 1e6:.1f} MB of {total / 1e6:.1f} MB on {host} ({(rate or 0) / 1e6:.1f} MB/s)")
    elif kind == "resolved":
        progress(f"{event.get('source')} is {event.get('revision')}")
    elif kind == "cached":
        progress(f"entry {event.get('key', '')[:12]} is already in {host}'s cache: nothing downloaded")
    elif kind == "done":
        progress(f"downloaded {event.get('downloaded', 0) / 1e6:.1f} MB in {event.get('seconds', 0):.1f}s")
