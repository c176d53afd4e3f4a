"""berth.toml's validated tables as planner.desired values: an AppFile as an AppConfig, a
HostFile as a HostConfig, [secrets.NAME] and the secrets file as SecretSources."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

from berth.stackfile.models import SSH_PATTERN, AppFile, HostFile, StackFile, StackSection
from berth.stackfile.source import Source
from planner.desired import AppConfig, BuildSource, HostConfig, SecretSource, VolumeMount, WeightsSource


def app_fields(name: str, app: AppFile, base: Path, origin: str, has_hosts: bool = False,
               host_written: bool = True) -> dict[str, Any]:
    """An [apps.NAME] table as the AppConfig keywords of the app it asks for (the caller
    makes it with Source.built, so what AppConfig refuses is reported at its key); paths
    are relative to `base`, the stack file's directory, and `origin` names the file in
    the plan."""
    build = None
    if app.build:
        build = BuildSource(
            context=str((base / Path(app.build.context).expanduser()).resolve()),
            dockerfile=app.build.dockerfile,
            args={key: _env_text(value) for key, value in app.build.args.items()},
            secrets=tuple(dict.fromkeys(app.build.secrets)),
            target=app.build.target,
            cache_from=tuple(dict.fromkeys(app.build.cache_from)),
        )
    command = app.command
    gpus, gpu_type = _gpu_request(app)
    return dict(
        name=name,
        host=app.host,
        build=build,
        image=app.image,
        command=("sh", "-c", command) if isinstance(command, str) else tuple(command) if command else None,
        port=app.port,
        host_port=app.host_port or app.port,
        readiness=app.readiness,
        liveness=app.liveness,
        readiness_timeout=app.readiness_timeout,
        env={key: _env_text(value) for key, value in app.env.items()},
        depends_on=tuple(dict.fromkeys(app.depends_on)),  # repeats mean nothing more
        replicas=app.replicas,
        restart=app.restart,
        cpus=app.cpus,
        memory=app.memory,
        # A weights token is one of the app's secrets: its file on the host is what the
        # fetcher reads (and the server may read it too, as on the platforms).
        secrets=tuple(dict.fromkeys([*app.secrets, *(w.secret for w in app.weights if w.secret)])),
        weights=tuple(weights_source(w.source, w.mount, w.allow, w.ignore, w.secret, base) for w in app.weights),
        secret_env=dict(app.secret_env),
        gpus=gpus,
        gpu_type=gpu_type,
        predict=app.predict,
        public=app.public,
        domains=tuple(dict.fromkeys(app.domains)),
        deploy=app.deploy,
        max_unavailable=app.max_unavailable,
        liveness_failure_threshold=app.liveness_failure_threshold,
        probe_interval=app.probe_interval,
        volumes=tuple(volume_mount(entry) for entry in app.volumes or ()),
        shm_size=app.shm_size,
        ipc=app.ipc,
        ulimits=dict(app.ulimits or {}),
        entrypoint=_entrypoint(app.entrypoint),
        stop_timeout=app.stop_timeout,
        origin=origin,
        # No host named, GPUs asked for, SSH hosts to choose from: placement picks one.
        host_auto=bool(gpus) and has_hosts and not host_written,
    )


def volume_mount(entry: str) -> VolumeMount:
    """A checked `volumes` entry (models.volume_entry) as the mount it asks for; a host
    path is normalised (/srv/models/ and /srv/models are one directory)."""
    source, target, *mode = entry.split(":")
    if source.startswith("/"):
        source = posixpath.normpath(source)
    return VolumeMount(source=source, target=posixpath.normpath(target), read_only=mode == ["ro"])


def _entrypoint(entrypoint: str | list[str] | None) -> tuple[str, ...] | None:
    """A list as it is; a string split as a shell would (as Compose reads one)."""
    if entrypoint is None:
        return None
    return tuple(shlex.split(entrypoint)) if isinstance(entrypoint, str) else tuple(entrypoint)


def weights_source(source: str, mount: str, allow: list[str], ignore: list[str], secret: str | None,
                   base: Path) -> WeightsSource:
    """A weights table's values: a local directory made absolute (relative to `base`),
    the mount normalised, the patterns sorted (their order means nothing)."""
    if not source.startswith(("hf://", "https://", "http://")):
        source = str((base / Path(source).expanduser()).resolve())
    return WeightsSource(source=source, mount=posixpath.normpath(mount), allow=tuple(sorted(set(allow))),
                         ignore=tuple(sorted(set(ignore))), secret=secret)


def _gpu_request(app: AppFile) -> tuple[int, str | None]:
    """(count, type): `gpus = N`, or `accelerator = "TYPE[:N]"` (N defaults to 1)."""
    if app.accelerator:
        kind, _, count = app.accelerator.partition(":")
        return int(count or 1), kind
    return app.gpus or 0, None


def _env_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # TOML's spelling, not Python's
    return str(value)


def local_path(base: Path, written: str) -> str:
    """A path on this machine as the file writes it: ~ expanded, relative to the stack file."""
    return os.path.abspath(base / Path(written).expanduser())


def host_config(name: str, host: HostFile, base: Path) -> HostConfig:
    """A [hosts.NAME] table as the SSH host it names; key paths relative to `base`."""
    match = re.match(SSH_PATTERN, host.ssh)
    assert match is not None  # validated by HostFile
    user = match["user"] or os.environ.get("USER") or "root"

    def path(value: str) -> str:
        """~ kept for use time; a relative path is relative to the stack file."""
        return value if value.startswith("~") or os.path.isabs(value) else str((base / value).resolve())

    return HostConfig(
        name=name,
        user=user,
        address=match["address"].strip("[]"),
        port=int(match["port"] or 22),
        identity_file=path(host.identity_file) if host.identity_file else None,
        known_hosts=path(host.known_hosts),
        accept_new_host_key=host.accept_new_host_key,
        docker_socket=host.docker_socket,
        secrets_dir=posixpath.normpath(host.secrets_dir) if host.secrets_dir else None,
        proxy_jump=host.proxy_jump,
        user_given=bool(match["user"]),
        port_given=bool(match["port"]),
        build_on=host.build_on,
    )


def gateway_section(stack_file: StackFile, source: Source) -> StackSection | None:
    """[stack] with [gateway]'s port and admin_port in gateway_port and
    gateway_admin_port (the table is the same setting, written as a table); both forms at
    once is a contradiction the user settles."""
    section, table = stack_file.stack, stack_file.gateway
    if table is None:
        return section
    section = section or StackSection()
    if table.port is not None and section.gateway_port is not None:
        source.error(("gateway", "port"), "the gateway's port is set twice, here and as [stack] gateway_port; "
                     "keep one")
        return section
    port = table.port if table.port is not None else section.gateway_port
    if port is None:
        source.error(("gateway",), "needs port = N (the port the gateway listens on), or [stack] gateway_port")
    update: dict[str, Any] = {"gateway_port": port}
    if table.admin_port is not None:
        update["gateway_admin_port"] = table.admin_port
    return section.model_copy(update=update)


def served_ports(section: StackSection | None, apps: dict[str, AppConfig], source: Source) -> dict[str, AppConfig]:
    """Behind the gateway, a rolling deploy starts each new replica beside the old one,
    so the two cannot share a host port: such apps publish on a free port berth picks, and
    the gateway's port is their address. A fixed host_port written for one is a
    contradiction the user must settle. A GPU app's new replica starts beside the old one
    only when the host has GPUs free for it (else the old one stops first): it publishes
    on a picked port too, unless its file fixes host_port (then it always stops first)."""
    if section is None or section.gateway_port is None:
        return apps
    served = {}
    for name, app in apps.items():
        if app.deploy != "rolling" or (app.gpus and "host_port" in source.table("apps", name)):
            served[name] = app
            continue
        if "host_port" in source.table("apps", name):
            source.error(("apps", name, "host_port"),
                         f"{name} is served by the gateway with deploy = \"rolling\", which starts each new "
                         "replica on a free port beside the old one, so a fixed host_port cannot be kept; remove "
                         "host_port (the gateway's port is the app's address) or set deploy = \"recreate\"")
        served[name] = app.model_copy(update={"host_port": None})
    return served


def secret_sources(stack_file: StackFile, apps: dict[str, AppConfig], source: Source) -> dict[str, SecretSource]:
    """Each [secrets.NAME]'s source; then, for a secret an app names that no table
    defines, the secrets file (a table wins over a line of the file: it is explicit)."""
    base = source.file.parent
    sources: dict[str, SecretSource] = {}
    for name, table in stack_file.secrets.items():
        where = {"name": name, "defined_file": source.shown, "defined_key": f"secrets.{name}",
                 "defined_line": source.line(("secrets", name))}
        if table.env is not None:
            sources[name] = SecretSource(env=table.env, source=f"env {table.env}", **where)
        elif table.file is not None:
            sources[name] = SecretSource(file=local_path(base, table.file), source=f"file {table.file}", **where)
        elif table.command is not None:
            command = ("sh", "-c", table.command) if isinstance(table.command, str) else tuple(table.command)
            shown_command = table.command if isinstance(table.command, str) else shlex.join(command)
            sources[name] = SecretSource(command=command, source=f"command {shown_command}", **where)
    section = stack_file.stack
    if section is not None and section.secrets_file:
        used = {name for app in apps.values() for name in (*app.secrets, *app.secret_env.values())}
        used |= set(stack_file.gateway.api_keys if stack_file.gateway else ())
        if stack_file.gateway and isinstance(stack_file.gateway.tls, dict):
            used |= set(stack_file.gateway.tls.values())
        for name in sorted(used - set(sources)):
            sources[name] = SecretSource(
                name=name, secrets_file=local_path(base, section.secrets_file),
                source=f"secrets_file {section.secrets_file}", defined_file=source.shown,
                defined_key="stack.secrets_file", defined_line=source.line(("stack", "secrets_file")),
            )
    return sources


def platform_secret_defaults(
    apps: dict[str, AppConfig], defined: dict[str, SecretSource], shown_file: str,
) -> dict[str, SecretSource]:
    """Cerebrium and Truss files name secrets whose values live on the platform. One
    that berth.toml does not define is read, as the platforms hand secrets to local
    runs, from the environment variable of its name in upper case (hf_access_token:
    HF_ACCESS_TOKEN)."""
    sources: dict[str, SecretSource] = {}
    for app in apps.values():
        for name in (*app.secrets, *app.secret_env.values()):
            if name in defined or name in sources:
                continue
            var = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
            sources[name] = SecretSource(name=name, env=var, source=f"env {var}",
                                         defined_file=shown_file, defined_key=f"apps.{app.name}.secrets",
                                         defined_line=app.lines.get("secrets"))
    return sources
