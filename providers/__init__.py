"""Where steps run: the Provider protocol and its Docker engines (local, SSH), and
open_provider, the one place a host's kind is chosen.

Providers know Docker and hosts, nothing of plans or the CLI."""

from __future__ import annotations

from typing import Any, Callable


def open_provider(name: str, ssh: dict[str, Any] | None, builder: Callable[[], Any]) -> Any:
    """The Provider of host `name`: over SSH with `ssh`, its [hosts.NAME] settings (as
    SshTarget takes them; it connects on first use), else the local engine, the one host
    a stack names without a table (providers.base.BUILD_HOST). builder: the provider of
    BUILD_HOST, where an SSH host's images are built. The one place a host's kind is chosen."""
    from providers.base import BUILD_HOST

    if ssh is not None:
        from providers.ssh.host import SshHost, SshTarget

        return SshHost(SshTarget(**ssh), builder=builder)
    if name != BUILD_HOST:
        raise KeyError(name)
    from providers.local import local_engine
    from providers.secret_files import default_root

    return local_engine(secrets_root=default_root())
