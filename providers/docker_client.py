"""docker-py without paramiko: importing `docker` leaves paramiko (and the invoke it
pulls in) unloaded, which is 0.1 s of CPU in every berth command that talks to an engine.

docker-py imports paramiko only for its own ssh:// transport (docker.transport.sshconn,
which it skips when the import fails). berth never uses that transport: SSH hosts reach
their engine through berth's own forwarder (providers.ssh.forwarder), which loads
paramiko itself when a host needs it. So while `docker` itself is being imported, and
only in the thread importing it, an import of paramiko fails as if it were not installed;
any other import of paramiko, before or after, in any thread, loads it as usual. Where
paramiko is loaded already, or DOCKER_HOST names an ssh:// engine (docker-py's own
transport is then what reaches the local engine), docker-py is imported as it is.

install() puts the finder in place once; it imports nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
from typing import Any

_local = threading.local()


class _Importing(importlib.abc.Loader):
    """docker's own loader, with paramiko refused in this thread while it runs."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        _local.refusing = True
        try:
            self.loader.exec_module(module)
        finally:
            _local.refusing = False

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, get_filename, ...
        return getattr(self.loader, name)


class DockerWithoutParamiko(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name == "paramiko" and getattr(_local, "refusing", False):
            raise ModuleNotFoundError("paramiko is not loaded for docker-py's ssh:// transport", name=name)
        if name != "docker" or "paramiko" in sys.modules or os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Importing(spec.loader)
        return spec


_FINDER = DockerWithoutParamiko()


def install() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
