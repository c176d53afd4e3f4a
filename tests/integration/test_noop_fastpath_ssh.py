"""The no-op fast path (berth/noop.py) for a stack on SSH hosts, against the simulated
hosts of scripts/testhosts.sh: a repeated no-op answers on one SSH connection and one
engine channel per host, and a change on a host (or in the stack) still plans in full."""

from __future__ import annotations

import json

import pytest
from test_noop_fastpath import Runs
from test_ssh_hosts import app, hosts, remote  # noqa: F401 (fixtures)


@pytest.fixture
def on_two_hosts(project, remote, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    th1, th2 = remote["th1"], remote["th2"]
    project.copy_context("httpd")
    base = f'[stack]\nname = "{{stack}}"\n' + th1.toml() + th2.toml()
    project.write(base + app("a", "th1", "{port0}", "on-th1") + app("b", "th2", "{port0}", "on-th2"))
    runs = Runs(project, tmp_path_factory.mktemp("report"))
    fast, _ = runs("apply", "--auto-approve")
    assert not fast
    return runs, base, th1, th2


def test_a_repeated_noop_on_ssh_hosts_answers_on_one_connection_and_channel_per_host(
        on_two_hosts, tmp_path_factory: pytest.TempPathFactory) -> None:
    runs, _, th1, th2 = on_two_hosts
    fast, result = runs("plan", "--detailed-exitcode")
    assert not fast and "No changes" in result.stdout, "the first no-op plan plans in full, and records"
    stats = tmp_path_factory.mktemp("stats") / "ssh-stats.json"  # beside the stack file, it would be a change
    runs.env["BERTH_SSH_STATS"] = str(stats)
    try:
        fast, result = runs("plan", "--detailed-exitcode")
    finally:
        del runs.env["BERTH_SSH_STATS"]
    assert fast, "an unchanged stack on SSH hosts was planned in full"
    assert result.returncode == 0 and result.stdout == "No changes. The hosts match the configuration.\n"
    figures = json.loads(stats.read_text())
    for host in ("th1", "th2"):  # nothing but the engine asked: no command, no SFTP, no probe
        assert figures[host] == {"connections": 1, "channels": 1, "channels_docker": 1, "image_bytes_sent": 0,
                                 "local_connections": 0}
    assert not runs("apply", "--auto-approve")[0]
    fast, result = runs("apply", "--auto-approve")
    if not fast:  # the first no-op apply may record the configuration in state
        fast, result = runs("apply", "--auto-approve")
    assert fast and "No changes" in result.stdout


def test_changes_on_an_ssh_host_or_in_the_stack_still_plan(on_two_hosts, tmp_path_factory) -> None:
    runs, base, th1, th2 = on_two_hosts
    project = runs.project

    def only(host) -> object:
        (container,) = host.stack_containers(project.stack).values()
        return container

    runs.armed()
    only(th2).stop(timeout=0)
    stats = tmp_path_factory.mktemp("stats") / "ssh-stats.json"
    runs.env["BERTH_SSH_STATS"] = str(stats)
    try:
        runs.changed()
    finally:
        del runs.env["BERTH_SSH_STATS"]
    figures = json.loads(stats.read_text())  # the fast path's look, then the full plan's: both counted
    assert figures["th2"]["connections"] == figures["th1"]["connections"] == 2, figures
    runs("apply", "--auto-approve")
    runs.armed()

    only(th2).update(mem_limit="64m", memswap_limit="64m")
    runs.changed()
    runs("apply", "--auto-approve")
    runs.armed()

    only(th1).remove(force=True)
    runs.changed("app.a.container[0]@th1")
    runs("apply", "--auto-approve")
    runs.armed()

    project.write(base + app("a", "th1", "{port0}", "on-th1") + app("b", "th2", "{port0}", "on-th2-v2"))
    runs.changed("app.b.container[0]@th2 must be replaced")


def test_a_stack_whose_plan_reads_secret_files_over_sftp_always_plans_in_full(
        project, remote, tmp_path_factory: pytest.TempPathFactory) -> None:  # noqa: F811
    th1 = remote["th1"]
    project.copy_context("httpd")
    (project.path / "token.txt").write_text("token-1\n")
    project.write(f'[stack]\nname = "{{stack}}"\n[secrets.tok]\nfile = "token.txt"\n' + th1.toml()
                  + app("a", "th1", "{port0}", "x", secrets='["tok"]'))
    runs = Runs(project, tmp_path_factory.mktemp("report"))
    runs("apply", "--auto-approve")
    for _ in range(2):  # the host's secret files are read over SFTP, which the digest does not cover
        fast, result = runs("plan", "--detailed-exitcode")
        assert not fast and result.returncode == 0
