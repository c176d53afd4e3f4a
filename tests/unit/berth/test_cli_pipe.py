"""Issue 17 item 12: `berth status | head` ends quietly when the reader goes away, as other
CLIs do: no BrokenPipeError traceback, no "Exception ignored" at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BERTH = Path(sys.executable).parent / "berth"
STACK = """
[stack]
name = "piped"
""" + "".join(f"""
[apps.app{n}]
image = "busybox:1.36"
port = 8080
host_port = {18000 + n}
""" for n in range(40))


def closed_reader(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run berth with stdout a pipe nobody reads: its read end is closed before berth
    writes, so the first write that reaches the pipe fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([str(BERTH), *argv], cwd=cwd, stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    finally:
        os.close(write)
    return proc


@pytest.mark.parametrize("argv", [["plan", "--refresh=false", "--no-color"], ["state", "list", "--no-color"]],
                         ids=["plan", "state-list"])
def test_a_closed_stdout_ends_quietly(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "berth.toml").write_text(STACK)
    proc = closed_reader(argv, tmp_path)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 141), (proc.returncode, proc.stderr)  # 141: 128 + SIGPIPE, as a shell sees


def test_the_parser_loads_no_heavy_module():
    """Start-up stays fast: every command's module is imported to build the parser, so none
    may import pydantic, docker, rich, networkx or paramiko at its top (--version, --help
    and completion pay for nothing they do not use)."""
    import subprocess
    import sys

    code = ("import sys; from berth.cli import build_parser; build_parser(); "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'pydantic', 'docker', 'rich', 'networkx', 'paramiko', 'yaml', 'diskcache'}); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
