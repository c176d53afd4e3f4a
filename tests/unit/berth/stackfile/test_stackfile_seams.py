"""berth/stackfile's seams: one Source for every format, the build-directory staging the
platform readers share, and an import graph without circles or reaches into private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from berth.stackfile.models import AppFile
from berth.stackfile.platforms.staging import GENERATED_DIR, build_dir, stage_build
from berth.stackfile.source import Source, dotted, fail, quoted, raise_problems, toml_lines
from planner.diagnostics import Diagnostic, DiagnosticsError

ROOT = Path(__file__).resolve().parents[4]
PACKAGE = ROOT / "berth" / "stackfile"

TOML = """\
[apps.web]
image = "x"
env."A.B" = "y"

[apps.api]
port = 1
"""


# -- Source ----------------------------------------------------------------------------


def test_toml_source_names_key_paths_and_lines() -> None:
    source = Source(file=Path("/s/berth.toml"), shown="berth.toml", text=TOML)
    source.error(("apps", "web", "env", "A.B"), "bad", "why")
    source.error(("apps", "api", "port"), "worse")
    [first, second] = source.problems
    assert (first.file, first.key, first.line, first.detail) == ("berth.toml", 'apps.web.env."A.B"', 3, "why")
    assert (second.key, second.line) == ("apps.api.port", 6)


def test_platform_source_prefix_quote_and_ignored_lines() -> None:
    text = '[cerebrium.deployment]\nname = "x"\n"we\\"ird" = 1\n'
    source = Source(file=Path("/a/cerebrium.toml"), shown="a/cerebrium.toml", text=text, format="Cerebrium",
                    quote=quoted, prefix=("cerebrium",))
    assert source.origin == "cerebrium.toml (Cerebrium)"
    source.ignore(("deployment", "name"), "not used")
    source.error(("deployment", 'we"ird'), "odd")
    assert source.ignored == ["cerebrium.toml:2: cerebrium.deployment.name: not used"]
    # The platform readers quote a key that is not bare as they always have: plainly.
    assert source.problems[0].key == 'cerebrium.deployment."we"ird"'
    assert dotted(("deployment", 'we"ird')) == 'deployment."we\\"ird"'  # berth.toml's: JSON-escaped


def test_source_takes_key_lines_from_the_format_that_has_them() -> None:
    lines = {("docker_server",): 4, ("docker_server", "server_port"): 6, ("requirements", 1): 9}
    source = Source(file=Path("config.yaml"), shown="config.yaml", format="Truss",
                    lines=lambda path: lines.get(tuple(path)))
    assert source.line(("docker_server", "server_port")) == 6
    assert source.line(("requirements", 1)) == 9  # YAML places list items, TOML does not
    assert toml_lines(TOML)(["apps", "web", 0]) == toml_lines(TOML)(["apps", "web"]) == 1


def test_source_table_is_the_written_table_or_empty() -> None:
    source = Source(file=Path("berth.toml"), shown="berth.toml",
                    raw={"apps": {"web": {"port": 1}, "bad": 3}, "hosts": []})
    assert source.table("apps", "web") == {"port": 1}
    assert source.table("apps", "bad") == {}
    assert source.table("apps", "none") == {}
    assert source.table("hosts", "x") == {}


def test_validated_records_each_problem_in_users_words() -> None:
    source = Source(file=Path("berth.toml"), shown="berth.toml", text=TOML)
    assert source.validated(AppFile, {"image": "x", "prot": 1}, ("apps", "web")) is None
    summaries = {d.key: d.summary for d in source.problems}
    assert summaries == {"apps.web.port": "missing required key", "apps.web.prot": 'unknown key; did you mean "port"?'}
    assert source.validated(AppFile, {"image": "x", "port": 1}, ("apps", "web")) is not None


def test_fail_and_raise_problems() -> None:
    with pytest.raises(DiagnosticsError) as caught:
        fail("stack file x not found")
    assert [d.summary for d in caught.value.diagnostics] == ["stack file x not found"]
    raise_problems([])  # nothing found: nothing raised
    with pytest.raises(DiagnosticsError) as caught:
        raise_problems([Diagnostic(summary="b"), Diagnostic(summary="a", line=3), Diagnostic(summary="c", line=1)])
    assert [d.summary for d in caught.value.diagnostics] == ["c", "a", "b"]


# -- staging ---------------------------------------------------------------------------


def test_stage_build_writes_the_dockerfile_and_context(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    (app_dir / "sub").mkdir(parents=True)
    (app_dir / "main.py").write_text("x")
    (app_dir / "sub" / "skip.txt").write_text("y")
    (app_dir / ".berth").mkdir()
    (app_dir / ".berth" / "state").write_text("z")
    context, dockerfile = stage_build(tmp_path, "web", app_dir, include=["*"], exclude=["sub"],
                                      generated={"requirements.txt": "numpy\n"}, dockerfile="FROM scratch\n")
    out = build_dir(tmp_path, "web")
    assert (context, dockerfile) == (out / "context", out / "Dockerfile")
    assert dockerfile.read_text() == "FROM scratch\n"
    staged = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
    assert staged == [f"{GENERATED_DIR}/requirements.txt", "main.py"]
    mtime = dockerfile.stat().st_mtime_ns
    stage_build(tmp_path, "web", app_dir, include=["*"], exclude=["sub"],
                generated={"requirements.txt": "numpy\n"}, dockerfile="FROM scratch\n")
    assert dockerfile.stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_stage_build_with_the_apps_own_dockerfile_writes_none(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    context, dockerfile = stage_build(tmp_path, "web", tmp_path / "app", include=["*"], exclude=[],
                                      generated={}, dockerfile=None)
    assert dockerfile is None and context.is_dir()
    assert not (build_dir(tmp_path, "web") / "Dockerfile").exists()


# -- the import graph ------------------------------------------------------------------


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> list[tuple[str, str, list[str], bool]]:
    """(module, imported module, names, at module top) for each import inside the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("berth.stackfile"):
                found.append((_module(path), node.module, [a.name for a in node.names], id(node) in top))
    return found


def test_no_import_circle_in_stackfile() -> None:
    modules = {_module(path) for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {module: set() for module in modules}
    for module, target, names, _ in _imports():
        edges[module] |= {f"{target}.{n}" for n in names if f"{target}.{n}" in modules} or {target}
    for module in edges:
        edges[module].discard(module)
    # A module imports its package's __init__ on the way to a sibling; that is no edge back.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in edges.items()}
    seen: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import circle: " + " -> ".join([*path, module])
        if module in seen:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, (*path, module))
        seen.add(module)

    for module in sorted(edges):
        visit(module, ())


def test_no_private_names_imported_across_modules() -> None:
    reaches = [(module, target, name) for module, target, names, _ in _imports() for name in names
               if name.startswith("_")]
    assert reaches == []


def test_function_level_imports_only_keep_the_platforms_off_the_start_up_path() -> None:
    lazy = {(module, target, tuple(names)) for module, target, names, top in _imports() if not top}
    assert lazy <= {
        ("berth.stackfile.load", "berth.stackfile", ("platforms",)),
        ("berth.stackfile.berth_toml", "berth.stackfile", ("platforms",)),
    }


def test_a_plain_berth_toml_loads_without_the_platforms_readers(tmp_path: Path) -> None:
    (tmp_path / "berth.toml").write_text('[apps.web]\nimage = "x"\nport = 8000\n')
    code = ("import sys; from berth.stackfile.load import load_stack; load_stack(sys.argv[1]); "
            "sys.exit(any(m.startswith('berth.stackfile.platforms') or m in ('yaml', 'networkx') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "berth.toml")], cwd=ROOT).returncode == 0
