"""The build case: examples/cerebrium-fastapi built cold, then again after one requirement
was added, with BuildKit (the Docker CLI's, and the cache mounts berth writes into the
Dockerfile) against docker-py's legacy builder (BERTH_BUILDER=legacy, Dockerfile without
mounts).

Cold means nothing of this build is cached: a fresh pre_build command (a nonce) makes
every step after the base new for both builders, and BuildKit's cache mounts are pruned
first (`docker builder prune --filter type=exec.cachemount`, which leaves layers other
builds use alone). The figure is the build step's own time, as the apply reports it
("Build complete after ..."), beside the whole apply's wall time.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from pathlib import Path

from harness import BERTH, REPO, free_port_block, run

EXAMPLE = REPO / "examples" / "cerebrium-fastapi"
BUILDERS = ("buildkit", "legacy")


def _seconds(text: str) -> float:
    """berth's duration ("3.4s", "12s", "1m5s") in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(\d+(?:\.\d+)?)s", text)
    if match is None:
        raise ValueError(text)
    return int(match.group(1) or 0) * 60 + float(match.group(2))


def _build_seconds(stdout: str) -> float:
    found = re.search(r"\.image@local: Build complete after (\S+)", stdout)
    if found is None:
        raise RuntimeError(f"no build in the apply's output:\n{stdout[-2000:]}")
    return _seconds(found.group(1))


def _cerebrium(name: str, port: int, nonce: str, extra: str = "") -> str:
    text = (EXAMPLE / "cerebrium.toml").read_text()
    text = text.replace('name = "my-fastapi-app"', f'name = "{name}"')
    text = text.replace('"--port", "5000"', f'"--port", "{port}"').replace("port = 5000", f"port = {port}")
    text = text.replace("use_uv = true", f'use_uv = true\npre_build_commands = ["echo {nonce}"]')
    return text + extra


def one_builder(builder: str) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix=f"berth-bench-build-{builder}-"))
    name = f"bench-build-{builder}-{secrets.token_hex(3)}"
    port = free_port_block(1)
    env = {"BERTH_BUILDER": builder}
    try:
        shutil.copy(EXAMPLE / "main.py", directory / "main.py")
        nonce = secrets.token_hex(8)
        (directory / "cerebrium.toml").write_text(_cerebrium(name, port, nonce))
        if builder == "buildkit":
            run(["docker", "builder", "prune", "-f", "--filter", "type=exec.cachemount"])
        cold = run([str(BERTH), "apply", "--auto-approve", "-f", str(directory)], env=env)
        (directory / "cerebrium.toml").write_text(_cerebrium(name, port, nonce, 'six = "latest"\n'))
        changed = run([str(BERTH), "apply", "--auto-approve", "-f", str(directory)], env=env)
        dockerfile = next((directory / ".berth" / "build").rglob("Dockerfile")).read_text()
        return {
            "builder": builder, "cache_mounts": "--mount=type=cache" in dockerfile,
            "cold_build_s": _build_seconds(cold.stdout), "cold_apply_s": cold.wall,
            "changed_build_s": _build_seconds(changed.stdout), "changed_apply_s": changed.wall,
            "cold_fetched": _prepared(cold.stdout), "changed_fetched": _prepared(changed.stdout) or "none (all from the cache)",
        }
    finally:
        run([str(BERTH), "destroy", "--auto-approve", "-f", str(directory)], check=False, env=env)
        shutil.rmtree(directory, ignore_errors=True)


def _prepared(stdout: str) -> str:
    """uv's own count of the packages it fetched ("Prepared 1 package"; none: all cached)."""
    found = re.findall(r"\| (Prepared \d+ packages?)", stdout)
    return found[-1] if found else ""


def measure() -> list[dict[str, object]]:
    return [one_builder(builder) for builder in BUILDERS]
