"""Loading berth.toml: find the file, parse it, validate it, check what spans tables, and
normalise it into a planner.desired.Stack.

Every problem with the input becomes a Diagnostic (file, key path, line); as many as can
be found are collected and raised together in one DiagnosticsError. Nothing here prints.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
import shlex
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from berth.stackfile import locate
from berth.stackfile.models import (
    ENV_NAME_PATTERN,
    NAME_PATTERN,
    NAME_RULE,
    SECRET_NAME_PATTERN,
    SECRET_NAME_RULE,
    SSH_PATTERN,
    AppFile,
    FromAppFile,
    HostFile,
    SecretTable,
    StackFile,
    StackSection,
    shown,
)
from planner.desired import AppConfig, BuildSource, HostConfig, SecretSource, Stack
from planner.diagnostics import Diagnostic, DiagnosticsError

STACK_FILE = "berth.toml"
# The files `-f DIR` looks for: berth's own stack file and the platforms' own formats.
CEREBRIUM_FILE = "cerebrium.toml"
TRUSS_FILE = "config.yaml"
STACK_FILES = (STACK_FILE, CEREBRIUM_FILE, TRUSS_FILE)
LOCAL_HOST = "local"
MAX_PORT = 65535

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_TYPE_WORDS = {
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
}


def find_stack_file(path: str | None) -> Path:
    """The stack file that `-f PATH` names: PATH itself, or, when it is a directory (None
    means the current one), the one of berth.toml, cerebrium.toml and config.yaml it
    holds; more than one is an error naming them. Returned absolute."""
    if path is None:
        return _file_in_directory(Path.cwd(), "the current directory", f" ({Path.cwd()})")
    given = Path(path).expanduser()
    if given.is_dir():
        given = _file_in_directory(given, f"directory {path}", "")
    elif not given.is_file():
        _fail(f"stack file {path} not found")
    return Path(os.path.abspath(given))  # absolute and without "..", but symlinks kept


def _file_in_directory(directory: Path, named: str, where: str) -> Path:
    found = [name for name in STACK_FILES if (directory / name).is_file()]
    if not found:
        _fail(f"no {STACK_FILE} in {named}{where} (nor {CEREBRIUM_FILE} or {TRUSS_FILE}); "
              "run berth beside one or pass -f PATH")
    if len(found) > 1:
        _fail(f"{named} holds {' and '.join(found)}: pass -f with the one you mean")
    return Path(os.path.abspath(directory / found[0]))


def file_format(file: Path) -> str:
    """"berth", "cerebrium" or "truss", from the file's name: cerebrium.toml is
    Cerebrium's, any .yaml or .yml file Truss's, any other berth's own."""
    if file.name == CEREBRIUM_FILE:
        return "cerebrium"
    if file.suffix in (".yaml", ".yml"):
        return "truss"
    return "berth"


def load_stack(path: str | None) -> Stack:
    """The Stack that the stack file at `path` (as for find_stack_file) asks for. A
    cerebrium.toml or Truss config.yaml on its own is a stack of one app."""
    file = find_stack_file(path)
    if file_format(file) != "berth":
        return _platform_stack(file)
    source = _Source(file=file, shown=_shown_path(file), text=_read(file))
    raw = source.raw = _parse(source)
    stack_file = _validate(raw, source)
    _check_apps(raw.get("apps"), raw.get("hosts"), source)
    _check_secrets(raw, source)
    apps = _normalise_apps(stack_file, source)
    secrets = _secret_sources(stack_file, apps, source)
    platform_apps = {name: app for name, app in apps.items() if name in source.from_paths}
    secrets |= _platform_secret_defaults(platform_apps, secrets, source.shown)
    hosts = {name: _host_config(name, host, file.parent) for name, host in stack_file.hosts.items()}
    _check_identity_files(hosts, source)
    name = _stack_name(stack_file.stack, file, source)
    if source.problems:
        raise DiagnosticsError(sorted(source.problems, key=lambda d: d.line or float("inf")))
    section = stack_file.stack or StackSection()
    secrets_file = section.secrets_file
    return Stack(name=name, file=str(file), apps=apps, secrets=secrets, hosts=hosts,
                 secrets_file=_local_path(file.parent, secrets_file) if secrets_file else None,
                 gateway_port=section.gateway_port, gateway_admin_port=section.gateway_admin_port)


# -- the file and its diagnostics -------------------------------------------------------


@dataclass
class _Source:
    """The stack file being loaded and the problems found in it so far."""

    file: Path
    shown: str  # the file as diagnostics name it
    text: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the parsed TOML
    problems: list[Diagnostic] = field(default_factory=list)
    from_paths: dict[str, Any] = field(default_factory=dict)  # app -> its `from` as written

    def app_table(self, name: str) -> dict[str, Any]:
        """The app's table as written, or {} where it is not a table."""
        apps = self.raw.get("apps")
        table = apps.get(name) if isinstance(apps, dict) else None
        return table if isinstance(table, dict) else {}

    def error(self, loc: Loc, summary: str, detail: str = "") -> None:
        line = locate.find_line(self.text, [part for part in loc if isinstance(part, str)])
        self.problems.append(
            Diagnostic(summary=summary, file=self.shown, key=_dotted(loc) or None, line=line, detail=detail)
        )


def _fail(summary: str, file: str | None = None, line: int | None = None) -> NoReturn:
    raise DiagnosticsError([Diagnostic(summary=summary, file=file, line=line)])


def _shown_path(file: Path) -> str:
    """Relative to the working directory when the file is under it, else absolute."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


def _dotted(loc: Loc) -> str:
    """("apps", "web", "env", "A.B") -> apps.web.env."A.B"; list indices as [i]."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else shown(part)
            text += f".{key}" if text else key
    return text


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        _fail(f"not UTF-8 text ({err.reason} at byte {err.start})", file=_shown_path(file))
    except OSError as err:
        _fail(f"cannot read: {err.strerror or err}", file=_shown_path(file))


def _parse(source: _Source) -> dict[str, Any]:
    """The TOML document; a syntax error stops here, since nothing after it can be trusted."""
    try:
        return tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        position = _TOML_POSITION.search(message)
        line = int(position[1]) if position else None
        if position:
            message = f"{_TOML_POSITION.sub('', message)} at column {position[2]}"
        elif "end of document" in message:
            line = source.text.count("\n") + 1
            message = message.replace("(at end of document)", "at the end of the file").strip()
        _fail(f"invalid TOML: {message}", file=source.shown, line=line)


# -- validation, one table at a time ----------------------------------------------------


def _validate(raw: dict[str, Any], source: _Source) -> StackFile:
    """The valid parts of the file. Each table is validated on its own so that one bad
    app still lets the cross-checks run over the others."""
    for key in raw:
        if key not in StackFile.model_fields:
            _unknown_key(source, (key,), list(StackFile.model_fields))
    stack = _validated(StackSection, raw.get("stack", {}), ("stack",), source)

    def app_model(name: str, table: Any) -> tuple[type[BaseModel], Any]:
        if isinstance(table, dict) and "from" in table:
            source.from_paths[name] = table["from"]
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
    return StackFile.model_construct(stack=stack, apps=apps, secrets=secrets, hosts=hosts)


def _named_tables(
    raw: dict[str, Any], key: str, what: str, example: str, pattern: str, rule: str,
    model_for: Callable[[str, Any], tuple[type[BaseModel], Any]], source: _Source,
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
        if not re.match(pattern, name):
            source.error((key, name), f"{what} name {shown(name)} must be {rule}")
        elif also is not None:
            also(name)
        model, data = model_for(name, table)
        item = _validated(model, data, (key, name), source)
        if item is not None:
            valid[name] = item
    return valid


def _validated(model: type[M], data: Any, prefix: Loc, source: _Source) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        for error in err.errors(include_url=False):
            loc = prefix + tuple(error["loc"])
            if error["type"] == "extra_forbidden":
                _unknown_key(source, loc, _keys_at(model, error["loc"][:-1]))
            else:
                source.error(loc, _summary(error))
        return None


def _summary(error: Any) -> str:
    """A pydantic error in the words of a TOML file."""
    kind = error["type"]
    if kind == "missing":
        return "missing required key"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {shown(error['input'])}"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = f"expected {message.removeprefix('Input should be ')}, got {shown(error['input'])}"
    return message


def _unknown_key(source: _Source, loc: Loc, known: list[str]) -> None:
    key = str(loc[-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        source.error(loc, f'unknown key; did you mean "{close[0]}"?')
    else:
        source.error(loc, "unknown key", detail=f"known keys here: {', '.join(known)}" if known else "")


def _keys_at(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys allowed in the table at `path` inside `model` (build's table, say)."""
    for part in path:
        field_info = model.model_fields.get(str(part))
        inner = _model_in(field_info.annotation) if field_info else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if found := _model_in(arg):
            return found
    return None


# -- checks that span apps, on the raw tables so that they run even for invalid apps -----


def _check_apps(raw_apps: Any, raw_hosts: Any, source: _Source) -> None:
    if not isinstance(raw_apps, dict):
        return
    tables = {name: table for name, table in raw_apps.items() if isinstance(table, dict)}
    host_names = [LOCAL_HOST, *(raw_hosts if isinstance(raw_hosts, dict) else {})]
    for name, table in tables.items():
        if "from" not in table:
            _check_image_source(name, table, source)
        elif "build" in table and "image" in table:
            source.error(("apps", name, "image"), "set either build or image, not both")
        _check_host(name, table, host_names, source)
        if "gpus" in table and "accelerator" in table:
            source.error(("apps", name, "accelerator"),
                         'set either gpus (a count) or accelerator ("H100:2": type and count), not both')
        _check_depends_on(name, table, list(raw_apps), source)
    _check_cycles(tables, source)


def _check_image_source(name: str, table: dict[str, Any], source: _Source) -> None:
    if "build" in table and "image" in table:
        source.error(("apps", name, "image"), "set either build or image, not both")
    elif "build" not in table and "image" not in table:
        source.error(
            ("apps", name),
            'needs build (a context directory, "./web") or image (an existing image, "repo/name:tag")',
        )


def _check_host(name: str, table: dict[str, Any], host_names: list[str], source: _Source) -> None:
    host = table.get("host", LOCAL_HOST)
    if isinstance(host, str) and host not in host_names:
        close = difflib.get_close_matches(host, host_names, n=1, cutoff=0.6)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        defined = ", ".join(f'"{h}"' for h in dict.fromkeys(host_names))  # a bad [hosts.local] is reported apart
        source.error(("apps", name, "host"), f"unknown host {shown(host)}{hint} (defined: {defined}; "
                                             f"add a [hosts.{host}] table for an SSH host)")


def _dependencies(table: dict[str, Any]) -> list[str]:
    deps = table.get("depends_on", [])
    return [dep for dep in deps if isinstance(dep, str)] if isinstance(deps, list) else []


def _check_depends_on(name: str, table: dict[str, Any], app_names: list[str], source: _Source) -> None:
    for dep in _dependencies(table):
        if dep == name:
            source.error(("apps", name, "depends_on"), "an app cannot depend on itself")
        elif dep not in app_names:
            close = difflib.get_close_matches(dep, app_names, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            source.error(("apps", name, "depends_on"), f"unknown app {shown(dep)}{hint}")


def _check_cycles(tables: dict[str, dict[str, Any]], source: _Source) -> None:
    """One diagnostic per set of apps that wait on each other."""
    edges = {name: [d for d in _dependencies(table) if d in tables and d != name] for name, table in tables.items()}
    if not _has_cycle(edges):
        return
    import networkx as nx  # heavy (0.15 s): imported only to describe a cycle that exists

    graph = nx.DiGraph()
    graph.add_nodes_from(tables)
    for name, table in tables.items():
        graph.add_edges_from((name, dep) for dep in _dependencies(table) if dep in tables and dep != name)
    order = {name: index for index, name in enumerate(tables)}
    components = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    for component in sorted(components, key=lambda c: min(order[n] for n in c)):
        first = min(component, key=order.__getitem__)
        edges = nx.find_cycle(graph.subgraph(component), source=first)
        names = [u for u, _ in edges]
        if first in names:  # start the cycle at the app written first, for a stable message
            names = names[names.index(first) :] + names[: names.index(first)]
        cycle = " -> ".join([*names, names[0]])
        source.error(("apps", names[0], "depends_on"), f"depends_on cycle: {cycle}")


def _check_secrets(raw: dict[str, Any], source: _Source) -> None:
    """Each [secrets.NAME] has one source; each secret an app names is defined (or may
    come from the secrets file); secret_env names real variables not also in env."""
    tables = raw.get("secrets") if isinstance(raw.get("secrets"), dict) else {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            continue
        given = [key for key in ("env", "file", "command") if key in table]
        if not given:
            source.error(("secrets", name),
                         'needs a source: env = "VAR", file = "~/path" or command = ["pass", "show", "NAME"]')
        elif len(given) > 1:
            source.error(("secrets", name, given[1]), f"set only one of env, file and command (found {' and '.join(given)})")
    stack = raw.get("stack")
    from_file = isinstance(stack, dict) and "secrets_file" in stack
    apps = raw.get("apps") if isinstance(raw.get("apps"), dict) else {}
    for app, table in apps.items():
        if not isinstance(table, dict):
            continue
        used: list[tuple[Loc, Any]] = []
        if isinstance(table.get("secrets"), list):
            used += [(("apps", app, "secrets"), name) for name in table["secrets"]]
        secret_env = table.get("secret_env")
        env = table.get("env") if isinstance(table.get("env"), dict) else {}
        if isinstance(secret_env, dict):
            for var, name in secret_env.items():
                loc: Loc = ("apps", app, "secret_env", var)
                if not re.match(ENV_NAME_PATTERN, var):
                    source.error(loc, f"{shown(var)} is not an environment variable name "
                                      "(letters, digits and '_', not starting with a digit)")
                elif var in env:
                    source.error(loc, f"{var} is also set in env; set it in one place")
                used.append((loc, name))
        for loc, name in used:
            if not isinstance(name, str):
                continue  # a wrong type, reported by validation
            if not re.match(SECRET_NAME_PATTERN, name):
                source.error(loc, f"secret name {shown(name)} must be {SECRET_NAME_RULE}")
            elif name not in tables and not from_file:
                close = difflib.get_close_matches(name, list(tables), n=1, cutoff=0.6)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                source.error(loc, f"unknown secret {shown(name)}{hint}; define it in [secrets.{name}] "
                                  "or name a secrets_file in [stack]")


def _has_cycle(edges: dict[str, list[str]]) -> bool:
    """Depth-first search with three colours, iterative so deep chains cannot overflow."""
    done: set[str] = set()
    for root in edges:
        if root in done:
            continue
        on_path = {root}
        stack = [(root, iter(edges[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return True
            elif child not in done:
                on_path.add(child)
                stack.append((child, iter(edges[child])))
    return False


# -- normalisation into planner.desired, and the checks that need normalised values -----


def _normalise_apps(stack_file: StackFile, source: _Source) -> dict[str, AppConfig]:
    from berth.stackfile import platforms  # the platforms' formats: only stacks using them pay

    base = source.file.parent
    apps: dict[str, AppConfig] = {}
    for name, app in stack_file.apps.items():
        host_written = "host" in source.app_table(name)
        if name in source.from_paths:
            config = platforms.from_app(name, app, source.from_paths[name], source)
            if config is not None:
                # No host named, GPUs asked for, SSH hosts to choose from: placement picks one.
                apps[name] = config.model_copy(update={
                    "host_auto": bool(config.gpus) and bool(stack_file.hosts) and not host_written})
        else:
            apps[name] = _app_config(name, app, base, source.file.name, bool(stack_file.hosts), host_written)
    apps = _served_ports(stack_file.stack, apps, source)
    _check_host_ports(apps, source)
    _check_gateway_ports(stack_file.stack, apps, source)
    for name, app in apps.items():
        if app.build and (name not in source.from_paths or "build" in stack_file.apps[name].model_fields_set):
            _check_build_context(name, stack_file.apps[name], app.build, source)
    return apps


def _platform_stack(file: Path) -> Stack:
    """A cerebrium.toml or config.yaml on its own: one app, named (as is the stack) after
    the name the file gives (Cerebrium deployment.name, Truss model_name), else its
    directory's; state and build files in .berth/ beside it."""
    from berth.stackfile import platforms

    app, problems = platforms.read_platform_file(file, _shown_path(file), stack_dir=file.parent, app=None)
    if problems:
        raise DiagnosticsError(sorted(problems, key=lambda d: d.line or float("inf")))
    assert app is not None
    apps = {app.name: app}
    return Stack(name=app.name, file=str(file), apps=apps, secrets=_platform_secret_defaults(apps, {}, _shown_path(file)))


def _host_config(name: str, host: HostFile, base: Path) -> HostConfig:
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
    )


def _check_identity_files(hosts: dict[str, HostConfig], source: _Source) -> None:
    """A named key that is not there is a mistake in the file: say so at load, with its
    line, rather than when the host is first contacted."""
    for name, host in hosts.items():
        if host.identity_file is None:
            continue
        path = os.path.expanduser(host.identity_file)
        if not os.path.isfile(path):
            source.error(("hosts", name, "identity_file"),
                         f"no such key file: {path}",
                         "the private key berth should log in with; leave identity_file out to use "
                         "ssh-agent or ~/.ssh/id_ed25519, id_ecdsa, id_rsa")


def _gpu_request(app: AppFile) -> tuple[int, str | None]:
    """(count, type): `gpus = N`, or `accelerator = "TYPE[:N]"` (N defaults to 1)."""
    if app.accelerator:
        kind, _, count = app.accelerator.partition(":")
        return int(count or 1), kind
    return app.gpus or 0, None


def _app_config(name: str, app: AppFile, base: Path, origin: str, has_hosts: bool = False,
                host_written: bool = True) -> AppConfig:
    build = None
    if app.build:
        build = BuildSource(
            context=str((base / Path(app.build.context).expanduser()).resolve()),
            dockerfile=app.build.dockerfile,
            args={key: _env_text(value) for key, value in app.build.args.items()},
        )
    command = app.command
    gpus, gpu_type = _gpu_request(app)
    return AppConfig(
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
        secrets=tuple(dict.fromkeys(app.secrets)),
        secret_env=dict(app.secret_env),
        gpus=gpus,
        gpu_type=gpu_type,
        predict=app.predict,
        deploy=app.deploy,
        liveness_failure_threshold=app.liveness_failure_threshold,
        probe_interval=app.probe_interval,
        origin=origin,
        # No host named, GPUs asked for, SSH hosts to choose from: placement picks one.
        host_auto=bool(gpus) and has_hosts and not host_written,
    )


def _local_path(base: Path, written: str) -> str:
    """A path on this machine as the file writes it: ~ expanded, relative to the stack file."""
    return os.path.abspath(base / Path(written).expanduser())


def _secret_sources(stack_file: StackFile, apps: dict[str, AppConfig], source: _Source) -> dict[str, SecretSource]:
    """Each [secrets.NAME]'s source; then, for a secret an app names that no table
    defines, the secrets file (a table wins over a line of the file: it is explicit)."""
    base = source.file.parent
    sources: dict[str, SecretSource] = {}
    for name, table in stack_file.secrets.items():
        where = {"name": name, "defined_file": source.shown, "defined_key": f"secrets.{name}",
                 "defined_line": locate.find_line(source.text, ["secrets", name])}
        if table.env is not None:
            sources[name] = SecretSource(env=table.env, source=f"env {table.env}", **where)
        elif table.file is not None:
            sources[name] = SecretSource(file=_local_path(base, table.file), source=f"file {table.file}", **where)
        elif table.command is not None:
            command = ("sh", "-c", table.command) if isinstance(table.command, str) else tuple(table.command)
            shown_command = table.command if isinstance(table.command, str) else shlex.join(command)
            sources[name] = SecretSource(command=command, source=f"command {shown_command}", **where)
    section = stack_file.stack
    if section is not None and section.secrets_file:
        used = {name for app in apps.values() for name in (*app.secrets, *app.secret_env.values())}
        for name in sorted(used - set(sources)):
            sources[name] = SecretSource(
                name=name, secrets_file=_local_path(base, section.secrets_file),
                source=f"secrets_file {section.secrets_file}", defined_file=source.shown,
                defined_key="stack.secrets_file", defined_line=locate.find_line(source.text, ["stack", "secrets_file"]),
            )
    return sources


def _platform_secret_defaults(
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
                                         defined_file=shown_file, defined_key=f"apps.{app.name}.secrets")
    return sources


def _env_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # TOML's spelling, not Python's
    return str(value)


def _port_key(name: str, source: _Source) -> Loc:
    """host_port where the file sets it, else port (which it defaults to)."""
    written = "host_port" in source.app_table(name)
    return ("apps", name, "host_port" if written else "port")


def _served_ports(section: StackSection | None, apps: dict[str, AppConfig], source: _Source) -> dict[str, AppConfig]:
    """Behind the gateway, a rolling deploy starts each new replica beside the old one,
    so the two cannot share a host port: such apps publish on a free port berth picks, and
    the gateway's port is their address. A fixed host_port written for one is a
    contradiction the user must settle. GPU apps are replaced in place (the new replica
    would need the old one's devices), so they keep their ports."""
    if section is None or section.gateway_port is None:
        return apps
    served = {}
    for name, app in apps.items():
        if app.deploy != "rolling" or app.gpus:
            served[name] = app
            continue
        if "host_port" in source.app_table(name):
            source.error(("apps", name, "host_port"),
                         f"{name} is served by the gateway with deploy = \"rolling\", which starts each new "
                         "replica on a free port beside the old one, so a fixed host_port cannot be kept; remove "
                         "host_port (the gateway's port is the app's address) or set deploy = \"recreate\"")
        served[name] = app.model_copy(update={"host_port": None})
    return served


def _check_host_ports(apps: dict[str, AppConfig], source: _Source) -> None:
    """Replica I of an app publishes host_port + I, so each app holds a range of ports;
    two ranges on one host must not meet. Apps on a free port berth picks hold none."""
    ranges: list[tuple[str, range]] = []
    for name, app in apps.items():
        if app.host_port is None:
            continue
        ports = range(app.host_port, app.host_port + app.replicas)
        if ports[-1] > MAX_PORT:
            source.error(
                ("apps", name, "replicas"),
                f"{app.replicas} replicas from host port {app.host_port} would publish ports past {MAX_PORT}",
            )
        for other, other_ports in ranges:
            if apps[other].host == app.host and (shared := _first_shared(other_ports, ports)) is not None:
                source.error(
                    _port_key(name, source),
                    f"host port {shared} is published by both {other} ({_span(other_ports)}) "
                    f"and {name} ({_span(ports)})",
                )
        ranges.append((name, ports))


def _check_gateway_ports(section: StackSection | None, apps: dict[str, AppConfig], source: _Source) -> None:
    """The gateway listens on gateway_port of every host that runs apps: no app there
    may publish it. Its admin API (gateway_admin_port) is on the gateway container's own
    loopback, so it only must not be gateway_port."""
    if section is None or section.gateway_port is None:
        return
    port = section.gateway_port
    if port == section.gateway_admin_port:
        source.error(("stack", "gateway_admin_port"),
                     f"the gateway's admin API cannot share port {port} with gateway_port")
        return
    for name, app in apps.items():
        if app.host_port is None:
            continue
        ports = range(app.host_port, app.host_port + app.replicas)
        if port in ports:
            source.error(_port_key(name, source),
                         f"host port {port} is the gateway's ([stack] gateway_port), but {name} publishes "
                         f"{_span(ports)}")


def _first_shared(a: range, b: range) -> int | None:
    start, stop = max(a.start, b.start), min(a.stop, b.stop)
    return start if start < stop else None


def _span(ports: range) -> str:
    return f"port {ports.start}" if len(ports) == 1 else f"ports {ports.start}-{ports[-1]}"


def _check_build_context(name: str, app: AppFile, build: BuildSource, source: _Source) -> None:
    assert app.build is not None
    as_table = isinstance(source.app_table(name).get("build"), dict)
    build_key: Loc = ("apps", name, "build")
    context = Path(build.context)
    written = app.build.context
    if not context.is_dir():
        what = "is not a directory" if context.exists() else "not found"
        source.error(build_key + (("context",) if as_table else ()), f"build context {written} {what} ({context})")
        return
    dockerfile = context / build.dockerfile
    if not dockerfile.is_file():
        key = build_key + (("dockerfile",) if as_table else ())
        source.error(key, f"no {build.dockerfile} in build context {written} (looked for {dockerfile})")


def _stack_name(section: StackSection | None, file: Path, source: _Source) -> str:
    """[stack] name, else the stack file's directory name made into a valid name."""
    if section is not None and section.name:
        return section.name
    name = re.sub(r"[^a-z0-9_-]+", "-", file.parent.name.lower()).lstrip("-_").rstrip("-")
    if not name:
        source.error(("stack", "name"), f"cannot make a stack name from directory {shown(file.parent.name)}; set one")
    return name
