"""The CPU one state write costs (state.store.DiskStore.write, as an apply makes one per
finished step), at 20 and 200 apps (an image and a container record each).

    .venv/bin/python bench/statewrites.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from state.address import Address
from state.model import ResourceState, State
from state.store import DiskStore


def per_write(apps: int, writes: int = 20) -> float:
    """CPU milliseconds per write of a state of `apps` apps."""
    store = DiskStore(Path(tempfile.mkdtemp(prefix="berth-bench-writes-")) / "s", "bench")
    resources = {}
    for i in range(apps):
        for text in (f"app.a{i}.image@local", f"app.a{i}.container[0]@local"):
            address = Address.parse(text)
            resources[text] = ResourceState(
                address=address, type="container" if "container" in text else "image", host="local", id="f" * 64,
                status="ready", attributes={"name": f"berth-bench-a{i}-0", "image": "berth-bench:1", "port": 8000,
                                            "host_port": 10000 + i, "env": {"MESSAGE": "v1"}, "readiness": "/ready"})
    state = store.write(State(stack="bench", resources=resources), note="apply", config={"apps": apps}, run="bench")
    start = time.process_time()
    for _ in range(writes):
        state = store.write(state, note="apply", config={"apps": apps}, run="bench")
    return (time.process_time() - start) / writes * 1000


if __name__ == "__main__":
    for apps in (20, 200):
        print(f"state write, {apps} apps: {per_write(apps):.2f} ms CPU")
