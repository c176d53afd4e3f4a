"""The platforms' own files as apps: alone (a stack of one) or through `from = "PATH"` in a
berth.toml app table, whose other keys then override what the file says.

The readers (cerebrium.py, truss.py) turn a file into AppConfig fields; this module
picks the reader, names the app, and applies a berth.toml table's overrides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from berth.stackfile.files import CEREBRIUM_FILE, TRUSS_FILE, file_format, shown_path
from berth.stackfile.models import FromAppFile, shown
from berth.stackfile.normalise import app_fields, platform_secret_defaults
from berth.stackfile.platforms import cerebrium, truss
from berth.stackfile.source import Source, raise_problems
from planner.desired import AppConfig, Stack, container_name_problem, image_name_problem
from planner.diagnostics import Diagnostic

# Keys of an [apps.NAME] table that replace the file's value as they are.
_PLAIN = ("readiness", "liveness", "readiness_timeout", "replicas", "host", "restart", "cpus", "memory",
          "predict", "deploy", "max_unavailable", "liveness_failure_threshold", "probe_interval",
          "volumes", "shm_size", "ipc", "ulimits", "entrypoint", "stop_timeout", "public", "domains")


def stack_of_one(file: Path) -> Stack:
    """A cerebrium.toml or config.yaml on its own: one app, named (as is the stack) after
    the name the file gives (Cerebrium deployment.name, Truss model_name), else its
    directory's; state and build files in .berth/ beside it."""
    app, problems = read_platform_file(file, shown_path(file), stack_dir=file.parent, app=None)
    raise_problems(problems)
    assert app is not None
    apps = {app.name: app}
    return Stack(name=app.name, file=str(file), apps=apps, secrets=platform_secret_defaults(apps, {}, shown_path(file)))


def read_platform_file(file: Path, shown_as: str, *, stack_dir: Path, app: str | None) -> tuple[AppConfig | None, list[Diagnostic]]:
    """The app a cerebrium.toml or Truss config.yaml describes, or the problems found."""
    reader = cerebrium if file_format(file) == "cerebrium" else truss
    imported, source = reader.read(file, shown_as, stack_dir, app)
    if not source.problems and not imported.app:
        source.error((), f"cannot make an app name from {shown(imported.name or file.parent.name)}; "
                     "give the app a name of lowercase letters, digits, '-' and '_'")
    if source.problems:
        return None, source.problems
    config = source.built(AppConfig, {**imported.fields, "name": imported.app, "ignored": tuple(source.ignored)},
                          lambda loc: imported.key_of(loc))
    if config is not None:  # where plan-time problems of these keys are reported (placement, secrets)
        lines = {field: line for field in ("gpus", "gpu_type", "secrets")
                 if field in imported.fields and (line := source.line(imported.key_of((field,))))}
        config = config.model_copy(update={"lines": {**config.lines, **lines}})
    if config is not None and app is None:  # a stack of one: the stack is named as the app
        problem = container_name_problem(config.name, config.name, config.replicas)
        if problem is None and config.build is not None:
            problem = image_name_problem(config.name, config.name)
        if problem:
            source.error(imported.keys.get("name", ()), problem)
    return (None if source.problems else config), source.problems


_SHELL_PORT = re.compile(r"(--port[= ]+)([0-9]+)\b")


def _port_in_command(command: tuple[str, ...] | None, old: int, new: int) -> tuple[tuple[str, ...] | None, str]:
    """The file's command with its server's port (`--port OLD`, `--port=OLD`) made `new`,
    as for an overridden `port`: the runtime's own command (uvicorn's, berth's cortex
    server's) names the port it listens on. A command that does not name it is kept, with
    a note (what to change) for the plan."""
    if not command:
        return command, ""
    args = list(command)
    found = False
    for index, arg in enumerate(args):
        if arg in ("--port", "-p") and index + 1 < len(args) and args[index + 1] == str(old):
            args[index + 1] = str(new)
            found = True
        elif arg == f"--port={old}":
            args[index] = f"--port={new}"
            found = True
        elif " " in arg and (text := _SHELL_PORT.sub(lambda m: f"{m[1]}{new}" if m[2] == str(old) else m[0], arg)) != arg:
            args[index] = text  # a shell command line (a Truss's sh -c start_command)
            found = True
    if found:
        return tuple(args), ""
    return command, (f"the server's command ({' '.join(command)}) does not name port {old} as --port; "
                     f"it must listen on {new} itself, or set command to one that does")


def from_app(name: str, app: FromAppFile, written: Any, source: Source) -> AppConfig | None:
    """[apps.NAME] with `from`: the file's app, with the table's keys over it."""
    loc = ("apps", name, "from")
    if not isinstance(written, str) or not written.strip():
        source.error(loc, f'expected a path to a cerebrium.toml or Truss config.yaml, got {shown(written)}')
        return None
    path = Path(source.file.parent, Path(written).expanduser())
    if path.is_dir():
        found = [n for n in (CEREBRIUM_FILE, TRUSS_FILE) if (path / n).is_file()]
        if len(found) != 1:
            what = " and ".join(found) if found else f"no {CEREBRIUM_FILE} or {TRUSS_FILE}"
            source.error(loc, f"directory {written} holds {what}: name the file")
            return None
        path = path / found[0]
    elif not path.is_file():
        source.error(loc, f"{written} not found ({path})")
        return None
    elif file_format(path) == "berth":
        source.error(loc, f"{written} is not a cerebrium.toml or Truss config.yaml; "
                     "from names one app's platform file, not another stack file")
        return None
    file = path.resolve()
    config, problems = read_platform_file(file, shown_path(file), stack_dir=source.file.parent, app=name)
    source.problems.extend(problems)
    if config is None:
        return None
    fmt = config.origin.rsplit(" (", 1)[-1]
    update: dict[str, Any] = {"origin": f"{written} ({fmt}"}
    written_keys = app.model_fields_set
    def key(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
        field = str(loc[0]) if loc else ""
        return ("apps", name, *loc) if field in app.model_fields_set else ("apps", name, "from")

    ours = source.built(AppConfig, app_fields(name, app.model_copy(update={"port": app.port or config.port}),
                                              source.file.parent, ""), key)
    if ours is None:
        return None
    if "build" in written_keys:
        update |= {"build": ours.build, "image": None}
    if "image" in written_keys:
        update |= {"image": ours.image, "build": None}
    if "command" in written_keys:
        update["command"] = ours.command
    if "port" in written_keys:
        update["port"] = ours.port
        update["host_port"] = ours.port  # host_port follows port unless given too
        if "command" not in written_keys and ours.port != config.port:
            command, note = _port_in_command(config.command, config.port, ours.port)
            update["command"] = command
            if note:
                update["ignored"] = (*config.ignored, f"apps.{name}.port: {note}")
    if "host_port" in written_keys:
        update["host_port"] = ours.host_port
    if "depends_on" in written_keys:
        update["depends_on"] = ours.depends_on
    update |= {key: getattr(ours, key) for key in _PLAIN if key in written_keys}
    if "env" in written_keys:
        update["env"] = {**config.env, **ours.env}
    if written_keys & {"gpus", "accelerator"}:
        update |= {"gpus": ours.gpus, "gpu_type": ours.gpu_type}
    if "secrets" in written_keys:
        update["secrets"] = ours.secrets
    if "secret_env" in written_keys:
        update["secret_env"] = {**config.secret_env, **ours.secret_env}
    return source.built(AppConfig, config.model_dump() | update, key)
