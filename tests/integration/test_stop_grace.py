"""A destroy stops each container with the grace it was created with (`stop_timeout`),
now asked of the engine in one call (no inspect first): a server that ignores SIGTERM is
killed once its 2 s run out, not after Docker's default 10 s, and not at once."""

from __future__ import annotations

import time

STACK = """
    [stack]
    name = "{stack}"
    [apps.stubborn]
    image = "busybox:latest"
    command = "trap '' TERM; mkdir -p /w && echo hi > /w/index.html && httpd -f -p 8000 -h /w & while true; do sleep 1; done"
    port = 8000
    host_port = {port0}
    readiness = "/"
    stop_timeout = 2
"""


def test_destroy_gives_a_container_its_own_stop_timeout(project):
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    [container] = project.containers()
    assert container.attrs["Config"]["StopTimeout"] == 2
    start = time.monotonic()
    project.berth("destroy", "--auto-approve")
    took = time.monotonic() - start
    assert not project.containers()
    assert 2.0 <= took < 8.0, f"destroy took {took:.1f}s for a container with stop_timeout = 2 that ignores SIGTERM"
