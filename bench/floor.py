"""The physical floor of the cold case: create and start N containers of the bench
image with docker-py directly, all in parallel (one thread each), with the same
settings berth gives its containers (port binding, restart policy, init, env), and
wait until every port answers 200 on /ready. Run as its own process, so the figure
includes the interpreter and docker-py's import as berth's does.

    .venv/bin/python bench/floor.py NAME FIRST_PORT COUNT        # start, wait, exit
    .venv/bin/python bench/floor.py --remove NAME                # remove them again
"""

from __future__ import annotations

import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

IMAGE = "berth-bench:1"
LABEL = "berth-bench.floor"


def start(name: str, first_port: int, count: int) -> None:
    import docker

    api = docker.APIClient(version="auto", max_pool_size=count)

    def one(i: int) -> None:
        host_config = api.create_host_config(port_bindings={8000: first_port + i}, init=True,
                                             restart_policy={"Name": "unless-stopped", "MaximumRetryCount": 0})
        created = api.create_container(IMAGE, name=f"{name}-app{i:03d}", ports=[8000], host_config=host_config,
                                       environment={"READY_DELAY": "0", "MESSAGE": "v1"}, labels={LABEL: name})
        api.start(created["Id"])
        url = f"http://127.0.0.1:{first_port + i}/ready"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{url} never served")

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(one, range(count)))


def remove(name: str) -> None:
    import docker

    api = docker.APIClient(version="auto", max_pool_size=32)
    listed = api.containers(all=True, filters={"label": f"{LABEL}={name}"})
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda c: api.remove_container(c["Id"], force=True), listed))


if __name__ == "__main__":
    if sys.argv[1] == "--remove":
        remove(sys.argv[2])
    else:
        start(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
