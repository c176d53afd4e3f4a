"""The no-op fast path (berth/noop.py) against the real engine: a repeated no-op plan or
apply answers without the full planner, and every kind of change still plans in full."""

from __future__ import annotations

from pathlib import Path

import pytest

STACK = """
[stack]
name = "{stack}"

[secrets.token]
file = "token.txt"

[secrets.api_key]
env = "NOOP_TEST_API_KEY"

[apps.api]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "v1" }
secrets = ["token", "api_key"]
"""


class Runs:
    """`berth` in the project, each run telling whether the fast path answered it."""

    def __init__(self, project, report_dir: Path) -> None:
        # outside the project: a file appearing beside the stack file is a change the fast path sees
        self.project, self.report = project, report_dir / "fastpath.report"
        self.env = {"NOOP_TEST_API_KEY": "key-1"}

    def __call__(self, *args: str, check: bool = True) -> tuple[bool, object]:
        self.report.unlink(missing_ok=True)
        result = self.project.berth(*args, check=check, env={**self.env, "BERTH_FASTPATH_REPORT": str(self.report)})
        return self.report.exists(), result

    def armed(self) -> None:
        """One full no-op plan, which records what it read; then the fast path answers."""
        fast, result = self("plan", "--detailed-exitcode")
        assert result.returncode == 0 and "No changes" in result.stdout, result.stdout
        fast, result = self("plan", "--detailed-exitcode")
        assert fast, "an unchanged stack was planned in full"
        assert result.returncode == 0 and result.stdout.strip() == "No changes. The hosts match the configuration."

    def changed(self, expect: str | None = None) -> str:
        fast, result = self("plan", "--detailed-exitcode", check=False)
        assert not fast, f"a change took the fast path:\n{result.stdout}"
        if expect is not None:
            assert result.returncode == 2 and expect in result.stdout, result.stdout + result.stderr
        return result.stdout


@pytest.fixture
def deployed(project, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    project.copy_context("httpd")
    (project.path / "token.txt").write_text("token-1\n")
    project.write(STACK)
    runs = Runs(project, tmp_path_factory.mktemp("report"))
    fast, _ = runs("apply", "--auto-approve")
    assert not fast
    return runs


def test_a_repeated_noop_plan_and_apply_answer_from_the_fast_path(deployed: Runs) -> None:
    fast, result = deployed("plan")
    assert not fast and "No changes" in result.stdout, "the first no-op plan plans in full, and records"
    fast, result = deployed("plan")
    assert fast and result.stdout == "No changes. The hosts match the configuration.\n" and result.stderr == ""
    # apply keeps its own record: the plan's says nothing about what apply prints. The
    # first no-op apply after a change may write state (the configuration it records),
    # so it is the second that records a no-op.
    assert not deployed("apply", "--auto-approve")[0]
    fast, result = deployed("apply", "--auto-approve")
    if not fast:
        fast, result = deployed("apply", "--auto-approve")
    assert fast and result.stdout == "No changes. The hosts match the configuration.\n"
    # what the fast path cannot answer is planned in full, unchanged
    for args in (("plan", "--json"), ("plan", "--target", "app.api"), ("plan", "--refresh=false"),
                 ("plan", "-v"), ("plan", "--destroy")):
        fast, result = deployed(*args)
        assert not fast, args


def test_edits_to_the_files_and_secret_values_still_plan(deployed: Runs) -> None:
    path = deployed.project.path
    deployed.armed()
    stack = path / "berth.toml"
    stack.write_text(stack.read_text().replace('"v1"', '"v2"'))
    deployed.changed('MESSAGE')
    stack.write_text(stack.read_text().replace('"v2"', '"v1"'))
    deployed.armed()

    entry = path / "httpd" / "entry.sh"
    original = entry.read_text()
    entry.write_text(original + "\n# another line\n")
    deployed.changed("content_hash")
    entry.write_text(original)
    deployed.armed()

    (path / "token.txt").write_text("token-2\n")
    deployed.changed('secret "app.api.secret.token@local"')
    (path / "token.txt").write_text("token-1\n")
    deployed.armed()

    deployed.env["NOOP_TEST_API_KEY"] = "key-2"
    deployed.changed('secret "app.api.secret.api_key@local"')
    deployed.env["NOOP_TEST_API_KEY"] = "key-1"
    deployed.armed()


def test_changes_behind_berths_back_and_by_another_berth_still_plan(deployed: Runs) -> None:
    project = deployed.project
    deployed.armed()
    (container,) = project.containers()
    container.rename(f"{project.stack}-renamed")
    deployed.changed()
    container.rename(f"{project.stack}-api-0")
    deployed("apply", "--auto-approve")
    deployed.armed()

    (container,) = project.containers()
    container.update(mem_limit="64m", memswap_limit="64m")
    deployed.changed()
    deployed("apply", "--auto-approve")
    deployed.armed()

    (container,) = project.containers()
    container.stop(timeout=0)
    deployed.changed()
    deployed("apply", "--auto-approve")
    deployed.armed()

    (container,) = project.containers()
    container.remove(force=True)
    deployed.changed("app.api.container[0]@local")
    deployed("apply", "--auto-approve")
    deployed.armed()

    # another berth writes the state: forgetting the container leaves a plan to create one
    deployed("state", "rm", "app.api.container[0]@local")
    deployed.changed("app.api.container[0]@local")
