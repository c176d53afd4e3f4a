"""The checks of berth.toml that span tables: hosts, depends_on and its cycles, secrets, host
and gateway ports, build contexts and identity files on disk; each problem onto the Source."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from berth.stackfile.models import (
    ENV_NAME_PATTERN,
    LOCAL_HOST,
    SECRET_NAME_PATTERN,
    SECRET_NAME_RULE,
    AppFile,
    StackSection,
    shown,
)
from berth.stackfile.source import Loc, Source
from planner.desired import (
    MAX_NAME,
    AppConfig,
    BuildSource,
    HostConfig,
    container_name_problem,
    image_name_problem,
)

MAX_PORT = 65535


# -- on the raw tables, so that they run even for invalid apps ---------------------------


def check_apps(raw_apps: Any, raw_hosts: Any, source: Source) -> None:
    """Each app's image source, host, GPU request and depends_on; then depends_on cycles."""
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


def _check_image_source(name: str, table: dict[str, Any], source: Source) -> None:
    if "build" in table and "image" in table:
        source.error(("apps", name, "image"), "set either build or image, not both")
    elif "build" not in table and "image" not in table:
        source.error(
            ("apps", name),
            'needs build (a context directory, "./web") or image (an existing image, "repo/name:tag")',
        )


def _check_host(name: str, table: dict[str, Any], host_names: list[str], source: Source) -> None:
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


def _check_depends_on(name: str, table: dict[str, Any], app_names: list[str], source: Source) -> None:
    for dep in _dependencies(table):
        if dep == name:
            source.error(("apps", name, "depends_on"), "an app cannot depend on itself")
        elif dep not in app_names:
            close = difflib.get_close_matches(dep, app_names, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            source.error(("apps", name, "depends_on"), f"unknown app {shown(dep)}{hint}")


def _check_cycles(tables: dict[str, dict[str, Any]], source: Source) -> None:
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


def check_secrets(raw: dict[str, Any], source: Source) -> None:
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
    gateway = raw.get("gateway") if isinstance(raw.get("gateway"), dict) else {}
    keys = gateway.get("api_keys") if isinstance(gateway.get("api_keys"), list) else []
    _check_defined([(("gateway", "api_keys"), name) for name in keys], tables, from_file, source)
    tls = gateway.get("tls")
    if isinstance(tls, dict):
        _check_defined([(("gateway", "tls", part), tls[part]) for part in ("cert", "key") if part in tls],
                       tables, from_file, source)
    for app, table in apps.items():
        if not isinstance(table, dict):
            continue
        used: list[tuple[Loc, Any]] = []
        if isinstance(table.get("secrets"), list):
            used += [(("apps", app, "secrets"), name) for name in table["secrets"]]
        if isinstance(table.get("weights"), list):
            used += [(("apps", app, "weights", i, "secret"), w["secret"]) for i, w in enumerate(table["weights"])
                     if isinstance(w, dict) and "secret" in w]
        build = table.get("build")
        if isinstance(build, dict) and isinstance(build.get("secrets"), list):
            used += [(("apps", app, "build", "secrets"), name) for name in build["secrets"]]
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
        _check_defined(used, tables, from_file, source)


def _check_defined(used: list[tuple[Loc, Any]], tables: dict[str, Any], from_file: bool, source: Source) -> None:
    """Each secret name used (where it is written, the name) is well formed and defined."""
    for loc, name in used:
        if not isinstance(name, str):
            continue  # a wrong type, reported by validation
        if not re.match(SECRET_NAME_PATTERN, name):
            source.error(loc, f"secret name {shown(name)} must be {SECRET_NAME_RULE}")
        elif len(name) > MAX_NAME:
            source.error(loc, f"secret name {shown(name)} is {len(name)} characters long; at most {MAX_NAME} "
                              "(it names the secret's file on the host)")
        elif name not in tables and not from_file:
            close = difflib.get_close_matches(name, list(tables), n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            source.error(loc, f"unknown secret {shown(name)}{hint}; define it in [secrets.{name}] "
                              "or name a secrets_file in [stack]")


# -- on normalised apps --------------------------------------------------------------


def check_host_ports(apps: dict[str, AppConfig], source: Source) -> None:
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


def check_gateway_tls(tls: Any, apps: dict[str, AppConfig], source: Source) -> None:
    """tls = "acme" certifies the apps' domains (a public CA checks names, not addresses):
    at least one app must have some."""
    if tls == "acme" and not any(app.domains for app in apps.values()):
        source.error(("gateway", "tls"), 'tls = "acme" certifies the apps\' domains, and no app has any: add '
                     'domains = ["llm.example.com"] to an app, or use tls = "internal"')


def check_gateway_ports(section: StackSection | None, apps: dict[str, AppConfig], source: Source) -> None:
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


def _port_key(name: str, source: Source) -> Loc:
    """host_port where the file sets it, else port (which it defaults to)."""
    written = "host_port" in source.table("apps", name)
    return ("apps", name, "host_port" if written else "port")


def _first_shared(a: range, b: range) -> int | None:
    start, stop = max(a.start, b.start), min(a.stop, b.stop)
    return start if start < stop else None


def _span(ports: range) -> str:
    return f"port {ports.start}" if len(ports) == 1 else f"ports {ports.start}-{ports[-1]}"


def check_build_contexts(apps: dict[str, AppConfig], tables: dict[str, AppFile], from_paths: dict[str, Any],
                         source: Source) -> None:
    """Each build context berth.toml names is a directory holding its Dockerfile (a
    platform file's own build is staged by its reader)."""
    for name, app in apps.items():
        if app.build and (name not in from_paths or "build" in tables[name].model_fields_set):
            _check_build_context(name, tables[name], app.build, source)


def _check_build_context(name: str, app: AppFile, build: BuildSource, source: Source) -> None:
    assert app.build is not None
    as_table = isinstance(source.table("apps", name).get("build"), dict)
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


def check_weights(apps: dict[str, AppConfig], source: Source, prefix: Loc = ()) -> None:
    """Each weights source is one berth can fetch (hf://org/name[@rev], a URL without
    patterns, an existing local directory), and no two mounts of an app collide with
    each other or with /secrets."""
    from planner.weights.fetch_script import FetchError, parse_source
    from providers.types import SECRETS_MOUNT

    for name, app in apps.items():
        mounts: dict[str, int] = {}
        for index, w in enumerate(app.weights):
            loc: Loc = (*prefix, "apps", name, "weights", index)
            if w.kind == "dir":
                path = Path(w.source)
                if not path.is_dir():
                    what = "is not a directory" if path.exists() else "not found"
                    source.error((*loc, "source"), f"weights directory {w.source} {what}")
            else:
                try:
                    parse_source(w.source)
                except FetchError as err:
                    source.error((*loc, "source"), str(err))
                if w.kind == "url" and (w.allow or w.ignore):
                    source.error((*loc, "allow" if w.allow else "ignore"),
                                 "allow and ignore patterns pick files of an hf:// repo; a URL is one file")
            if w.mount == SECRETS_MOUNT or w.mount.startswith(SECRETS_MOUNT + "/") or w.mount == "/":
                source.error((*loc, "mount"), f"weights cannot be mounted at {w.mount}")
            elif w.mount in mounts:
                source.error((*loc, "mount"), f"weights [{mounts[w.mount]}] are mounted at {w.mount} already")
            mounts.setdefault(w.mount, index)


def check_identity_files(hosts: dict[str, HostConfig], source: Source) -> None:
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


def check_docker_limits(stack: str, apps: dict[str, AppConfig], source: Source) -> None:
    """What Docker would refuse when the container is created or the image tagged: the
    names berth makes of the stack's and the app's (container, image repository).
    Refused here, before a plan stops anything. (An app's own values, an environment too
    large to exec included, are planner.desired.AppConfig's to check.)"""
    written = "name" in source.table("stack")
    building = [name for name, app in apps.items() if app.build is not None]
    stack_image = image_name_problem(stack, "app")
    if building and stack_image:
        where = ("stack", "name") if written else ("stack",)
        source.error(where, f"stack name {shown(stack)}: {stack_image}"
                     + ("" if written else "; the name comes from the directory: set [stack] name"))
    for name, app in apps.items():
        problem = container_name_problem(stack, name, app.replicas)
        if problem is None and name in building and not stack_image:
            problem = image_name_problem(stack, name)
        if problem:
            source.error(("apps", name), problem)
