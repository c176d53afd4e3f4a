"""The berth.toml reader: read and parse the file, validate it one table at a time, run the
cross-checks, and normalise it into a planner.desired.Stack, every problem raised at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from berth.stackfile import checks, environments, normalise
from berth.stackfile.files import shown_path
from berth.stackfile.models import (
    LOCAL_HOST,
    NAME_PATTERN,
    NAME_RULE,
    SECRET_NAME_PATTERN,
    SECRET_NAME_RULE,
    AppFile,
    FromAppFile,
    GatewayTable,
    HostFile,
    SecretTable,
    StackFile,
    StackSection,
    shown,
)
from berth.stackfile.source import Source, fail, parse_toml, raise_problems
from planner.desired import MAX_NAME, AppConfig, Stack, built_where


def load(file: Path, environment: str | None = None) -> Stack:
    """The Stack the berth.toml at `file` asks for, with environment's file laid over it
    when one is named; its problems, as many as can be found, raised together in one
    DiagnosticsError."""
    source = Source(file=file, shown=shown_path(file), text=_read(file))
    raw = source.raw = parse_toml(source.text, source.shown)
    if environment is not None:
        raw = _with_environment(source, environment)
    stack_file, from_paths = _validate(raw, source)
    checks.check_apps(raw.get("apps"), raw.get("hosts"), source)
    checks.check_secrets(raw, source)
    gateway_section = normalise.gateway_section(stack_file, source)
    apps = normalise.served_ports(gateway_section, _apps(stack_file, from_paths, source), source)
    if stack_file.gateway is not None and stack_file.gateway.port_range:
        first, last = (int(p) for p in stack_file.gateway.port_range.split("-"))
        apps = {name: app.model_copy(update={"port_range": (first, last)}) if app.host_port is None else app
                for name, app in apps.items()}
    checks.check_host_ports(apps, source)
    checks.check_gateway_ports(gateway_section, apps, source)
    checks.check_gateway_tls(stack_file.gateway.tls if stack_file.gateway else None, apps, source)
    checks.check_build_contexts(apps, stack_file.apps, from_paths, source)
    checks.check_weights(apps, source)
    secrets = normalise.secret_sources(stack_file, apps, source)
    platform_apps = {name: app for name, app in apps.items() if name in from_paths}
    secrets |= normalise.platform_secret_defaults(platform_apps, secrets, source.shown)
    hosts = {name: normalise.host_config(name, host, file.parent) for name, host in stack_file.hosts.items()}
    checks.check_identity_files(hosts, source)
    name = _stack_name(stack_file.stack, file, source)
    if environment is not None and name and not (source.overlay and "name" in source.overlay.table("stack")):
        name = f"{name}-{environment}"  # its own state; an overlay's own [stack] name is taken as written
        if len(name) > MAX_NAME:
            source.error(("stack", "name"), f"the stack of environment {environment} is named {name[:40]}..., "
                         f"{len(name)} characters; at most {MAX_NAME}: set [stack] name in the environment's file")
    if name:
        checks.check_docker_limits(name, apps, source)
    raise_problems(source.problems)
    section = gateway_section or StackSection()
    secrets_file = section.secrets_file
    gateway = stack_file.gateway
    return Stack(name=name, file=str(file), environment=environment, apps=apps, secrets=secrets, hosts=hosts,
                 secrets_file=normalise.local_path(file.parent, secrets_file) if secrets_file else None,
                 gateway_port=section.gateway_port, gateway_admin_port=section.gateway_admin_port,
                 gateway_port_key="gateway.port" if gateway and gateway.port is not None else "stack.gateway_port",
                 gateway_api_keys=tuple(dict.fromkeys(gateway.api_keys)) if gateway else (),
                 gateway_drain_timeout=gateway.drain_timeout if gateway else 30.0,
                 gateway_tls=(gateway.tls if isinstance(gateway.tls, str) else "secrets") if gateway and gateway.tls else None,
                 gateway_tls_secrets=(gateway.tls["cert"], gateway.tls["key"]) if gateway and isinstance(gateway.tls, dict)
                 else None)


def _with_environment(source: Source, environment: str) -> dict[str, Any]:
    """The base document with the environment's file over it (source keeps both, so each
    problem is reported in the file that set the key)."""
    if problem := environments.environment_problem(environment):
        fail(problem)
    path = environments.overlay_file(source.file, environment)
    if not path.is_file():
        fail(f"environment {environment}: no {path.name} beside {source.file.name} ({path.parent}); "
             f"it holds the keys that differ in {environment}, as berth.toml's own tables")
    overlay = Source(file=path, shown=shown_path(path), text=_read(path))
    overlay.raw = parse_toml(overlay.text, overlay.shown)
    source.overlay, source.base = overlay, source.raw
    source.raw = environments.merged(source.raw, overlay.raw)
    return source.raw


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        fail(f"not UTF-8 text ({err.reason} at byte {err.start})", file=shown_path(file))
    except OSError as err:
        fail(f"cannot read: {err.strerror or err}", file=shown_path(file))


def _validate(raw: dict[str, Any], source: Source) -> tuple[StackFile, dict[str, Any]]:
    """The valid parts of the file, and each `from` app's path as written. Each table is
    validated on its own so that one bad app still lets the cross-checks run over the others."""
    for key in raw:
        if key not in StackFile.model_fields:
            source.unknown_key((key,), list(StackFile.model_fields))
    stack = source.validated(StackSection, raw.get("stack", {}), ("stack",))
    gateway = source.validated(GatewayTable, raw["gateway"], ("gateway",)) if "gateway" in raw else None
    from_paths: dict[str, Any] = {}

    def app_model(name: str, table: Any) -> tuple[type[BaseModel], Any]:
        if isinstance(table, dict) and "from" in table:
            from_paths[name] = table["from"]
            return FromAppFile, {key: value for key, value in table.items() if key != "from"}
        return AppFile, table

    def host_name(name: str) -> None:
        if name == LOCAL_HOST:
            source.error(("hosts", name), f'"{LOCAL_HOST}" is the engine berth runs beside; name SSH hosts otherwise')

    apps = _named_tables(raw, "apps", "app", "[apps.web]", NAME_PATTERN, NAME_RULE, app_model, source)
    secrets = _named_tables(raw, "secrets", "secret", "[secrets.hf_token]", SECRET_NAME_PATTERN, SECRET_NAME_RULE,
                            lambda name, table: (SecretTable, table), source)
    hosts = _named_tables(raw, "hosts", "host", "[hosts.gpu-a]", NAME_PATTERN, NAME_RULE,
                          lambda name, table: (HostFile, table), source, also=host_name)
    return StackFile.model_construct(stack=stack, gateway=gateway, apps=apps, secrets=secrets, hosts=hosts), from_paths


def _named_tables(
    raw: dict[str, Any], key: str, what: str, example: str, pattern: str, rule: str,
    model_for: Callable[[str, Any], tuple[type[BaseModel], Any]], source: Source,
    also: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The valid tables of [KEY.NAME]: each name checked against pattern, each table
    validated on its own by the model model_for picks."""
    tables = raw.get(key, {})
    if not isinstance(tables, dict):
        source.error((key,), f"expected a table of {key} like {example}, got {shown(tables)}")
        return {}
    valid: dict[str, Any] = {}
    for name, table in tables.items():
        named = False
        if not re.match(pattern, name):
            source.error((key, name), f"{what} name {shown(name)} must be {rule}")
        elif len(name) > MAX_NAME:
            source.error((key, name), f"{what} name {shown(name)} is {len(name)} characters long; at most {MAX_NAME} "
                         "(berth makes container, image and file names of it)")
        else:
            named = True
            if also is not None:
                also(name)
        model, data = model_for(name, table)
        item = source.validated(model, data, (key, name))  # its problems are reported even when misnamed
        if item is not None and named:
            valid[name] = item
    return valid


def _apps(stack_file: StackFile, from_paths: dict[str, Any], source: Source) -> dict[str, AppConfig]:
    """Each valid app as an AppConfig: an app with `from` is its platform file's app with
    the table's keys over it (read only when a stack has one), any other the table's own."""
    apps: dict[str, AppConfig] = {}
    for name, app in stack_file.apps.items():
        host_written = "host" in source.table("apps", name)
        if name in from_paths:
            from berth.stackfile import platforms  # the platforms' formats: only stacks using them pay

            config = platforms.from_app(name, app, from_paths[name], source)
            if config is not None:
                # No host named, GPUs asked for, SSH hosts to choose from: placement picks one.
                apps[name] = config.model_copy(update={
                    "host_auto": bool(config.gpus) and bool(stack_file.hosts) and not host_written,
                    "lines": _volume_lines(name, app.volumes, source) if app.volumes else config.lines})
        else:
            fields = normalise.app_fields(name, app, source.file.parent, source.file.name,
                                          bool(stack_file.hosts), host_written)
            config = source.built(AppConfig, fields, lambda loc, name=name: ("apps", name, *_key_of(loc)))
            if config is not None:
                asked = {field: line for field, key in (("gpus", "gpus"), ("gpu_type", "accelerator"))
                         if key in source.table("apps", name) and (line := source.line(("apps", name, key)))}
                apps[name] = config.model_copy(update={"lines": _volume_lines(name, app.volumes, source) | asked})
        if name in apps and apps[name].build is not None:  # build_on = "host": built on the app's SSH host
            build = apps[name].build.model_copy(update={"build_on": app.build_on})
            config = apps[name].model_copy(update={"build": build})
            apps[name] = built_where(config, stack_file.hosts)
    return apps


def _volume_lines(name: str, volumes: list[str] | None, source: Source) -> dict[str, int]:
    """The line of each `volumes` entry, for the plan-time check of host paths."""
    lines = {f"volumes[{i}]": source.line(("apps", name, "volumes", i)) for i in range(len(volumes or ()))}
    return {key: line for key, line in lines.items() if line}


def _key_of(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """An AppConfig field's loc as the [apps.NAME] key that sets it."""
    renamed = {"gpu_type": "accelerator"}
    return (renamed.get(str(loc[0]), loc[0]), *loc[1:]) if loc else ()


def _stack_name(section: StackSection | None, file: Path, source: Source) -> str:
    """[stack] name, else the stack file's directory name made into a valid name."""
    if section is not None and section.name:
        return section.name
    name = re.sub(r"[^a-z0-9_-]+", "-", file.parent.name.lower()).lstrip("-_").rstrip("-")
    if not name:
        source.error(("stack", "name"), f"cannot make a stack name from directory {shown(file.parent.name)}; set one")
    elif len(name) > MAX_NAME:
        source.error(("stack", "name"), f"the stack is named after its directory, whose name is {len(name)} characters "
                     f"long; set [stack] name to one of at most {MAX_NAME}")
        return ""
    return name
