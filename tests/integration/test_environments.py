"""Environments (`berth -e NAME`): berth.NAME.toml over berth.toml, applied beside the
base stack, each with its own state, neither touched by the other's plans."""

from __future__ import annotations

import json

STACK = """
[stack]
name = "{stack}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
env = { MESSAGE = "prod" }
"""

STAGING = """
[apps.web]
host_port = {port1}
env = { MESSAGE = "staging" }
"""


def test_an_environment_runs_beside_the_base_and_neither_plans_the_others_resources(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.write(STAGING, name="berth.staging.toml")
    project.berth("apply", "--auto-approve")
    try:
        _side_by_side(project)
    finally:  # the fixture removes what carries the test's own stack label; staging's is STACK-staging
        for c in project.client.containers.list(all=True, filters={"label": f"berth.stack={project.stack}-staging"}):
            c.remove(force=True)
        for image in project.client.images.list(filters={"label": f"berth.stack={project.stack}-staging"}):
            project.client.images.remove(image.id, force=True)


def _side_by_side(project) -> None:
    staged = project.berth("-e", "staging", "apply", "--auto-approve").stdout
    assert f"Environment staging: stack {project.stack}-staging" in staged
    assert "message: prod" in project.get(project.ports[0])[1]
    assert "message: staging" in project.get(project.ports[1])[1]

    for env in ((), ("-e", "staging")):
        assert project.berth(*env, "plan", "--detailed-exitcode", check=False).returncode == 0
    listed = project.berth("-e", "staging", "state", "list")
    assert "environment staging" in listed.stderr and "app.web.container[0]@local" in listed.stdout

    # A change to the base plans nothing in staging, and staging's destroy leaves the base serving.
    project.write(STACK.replace('"prod"', '"prod-v2"'))
    base_plan = json.loads(project.berth("plan", "--json").stdout)
    assert base_plan["stack"] == project.stack and base_plan["changes"]
    assert project.berth("-e", "staging", "plan", "--detailed-exitcode", check=False).returncode == 0
    project.berth("-e", "staging", "destroy", "--auto-approve")
    assert project.get(project.ports[0])[0] == 200 and project.get(project.ports[1])[0] == 0
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 2
