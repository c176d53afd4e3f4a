"""`berth completion`: scripts made from the parser itself, run by a real bash."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from berth.cli import build_parser
from berth.commands.completion import _bash, _fish, words


def test_every_command_and_its_options_are_in_the_table():
    table = words(build_parser())
    assert {"plan", "apply", "destroy", "logs", "exec", "show", "completion", "state"} <= set(table[""])
    assert "--detailed-exitcode" in table["plan"] and "--follow" in table["logs"]
    assert {"list", "show", "pull", "mv"} <= set(table["state"]) and "state list" in table


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize(("line", "expected"), [
    (["berth", "st"], {"state", "status"}),
    (["berth", "state", "p"], {"pull", "push"}),
    (["berth", "-f", "somewhere", "plan", "--de"], {"--detailed-exitcode", "--destroy"}),
    (["berth", "logs", "--fo"], {"--follow"}),
])
def test_bash_completes_commands_and_options(line, expected):
    script = _bash(words(build_parser()))
    words_list = " ".join(f"'{w}'" for w in line)
    result = subprocess.run(["bash", "-c", f"{script}\nCOMP_WORDS=({words_list}); COMP_CWORD={len(line) - 1}; "
                             '_berth; printf "%s\\n" "${COMPREPLY[@]}"'], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == expected


def test_fish_names_every_top_level_command():
    script = _fish(words(build_parser()))
    top = next(line for line in script.splitlines() if "__fish_use_subcommand" in line)
    assert all(name in top for name in ("plan", "apply", "exec", "completion"))
