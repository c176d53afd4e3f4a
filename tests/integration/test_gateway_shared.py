"""One gateway per host and port, shared by every stack there, against real Docker: two
stacks behind one gateway each serve their own routes; destroying one leaves the other
serving with no failed request (on the local engine and on an SSH host); the last one
out removes the gateway; a clash with
another stack of the gateway, or with a container that is no stack's, is a plan error."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from conftest import Project, RequestLoop
from test_ssh_hosts import app, hosts, remote  # noqa: F401 (fixtures)

STACK = """
[stack]
name = "NAME"

[gateway]
port = {port10}
admin_port = {port11}

[apps.APP]
build = "./echo"
port = 8000
readiness = "/ready"
probe_interval = 1
"""


def second(project: Project, tmp_path_factory) -> Project:
    """Another stack on the same ports: the same gateway."""
    return Project(path=tmp_path_factory.mktemp("second"), stack=project.stack + "b", ports=project.ports,
                   client=project.client)


def deploy(project: Project, app: str) -> str:
    project.copy_context("echo")
    project.write(STACK.replace("NAME", project.stack).replace("APP", app))
    return project.berth("apply", "--auto-approve", timeout=600).stdout


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def gateways(project: Project) -> list:
    return [c for c in project.containers() if c.labels.get("berth.gateway-port")]


def test_two_stacks_share_one_gateway_and_one_destroyed_leaves_the_other_serving(project, tmp_path_factory):
    """Applied at once, by two berth processes: whichever starts the gateway, the other's
    routes go into it, and the host's lock keeps either from loading a config without the
    other's routes."""
    from concurrent.futures import ThreadPoolExecutor

    other = second(project, tmp_path_factory)
    try:
        with ThreadPoolExecutor(2) as pool:
            shown = list(pool.map(deploy, (project, other), ("alpha", "beta")))
        # The one that loaded its routes last says whom it shares the gateway with.
        assert f"a gateway shared with stack {project.stack}" in shown[1] \
            or f"a gateway shared with stack {other.stack}" in shown[0], shown
        url = f"http://127.0.0.1:{project.ports[10]}"
        [shared] = gateways(project)
        assert shared.name == f"berth-gateway-{project.ports[10]}" and "berth.stack" not in shared.labels
        for app in ("alpha", "beta"):
            status, body = get(f"{url}/{app}/hello")
            assert (status, json.loads(body)["path"]) == (200, "/hello"), body
        for stack in (project, other):  # each stack's second plan is empty
            done = stack.berth("plan", "--detailed-exitcode", check=False)
            assert done.returncode == 0, done.stdout + done.stderr
        # A third stack with an app of the same name would take /alpha/: refused at plan time.
        third = Project(path=tmp_path_factory.mktemp("third"), stack=project.stack + "c", ports=project.ports,
                        client=project.client)
        third.copy_context("echo")
        third.write(STACK.replace("NAME", third.stack).replace("APP", "alpha"))
        done = third.berth("plan", check=False)
        assert done.returncode == 1 and "apps.alpha" in done.stderr and f"stack {project.stack}" in done.stderr, \
            done.stdout + done.stderr
        assert "Traceback" not in done.stderr

        with RequestLoop(f"{url}/beta/hello") as loop:
            project.berth("destroy", "--auto-approve")
        assert loop.ok > 0 and loop.failures == [], loop.failures[:5]
        assert get(f"{url}/alpha/hello")[0] == 404 and get(f"{url}/beta/hello")[0] == 200
        assert [c.id for c in gateways(project)] == [shared.id]  # the same container serves on
        other.berth("destroy", "--auto-approve")
        assert gateways(project) == []  # the last stack out removed it
    finally:
        other.cleanup()


def test_a_gateway_port_another_container_publishes_is_refused_at_plan(project, docker_client):
    squatter = docker_client.containers.run("busybox:latest", ["sleep", "300"], detach=True, remove=True,
                                            ports={"9000/tcp": project.ports[10]}, labels={"berth-test.squatter": "1"})
    try:
        project.copy_context("echo")
        project.write(STACK.replace("NAME", project.stack).replace("APP", "alpha"))
        done = project.berth("plan", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        # The key the file used: [gateway] port, not [stack] gateway_port.
        assert (f"gateway.port: host port {project.ports[10]} on local is already published by container "
                f"{squatter.name}, which is not this stack's") in done.stderr, done.stderr
    finally:
        squatter.remove(force=True)


def test_two_stacks_share_one_gateway_on_an_ssh_host(project, remote, tmp_path_factory):  # noqa: F811
    th3 = remote["th3"]
    other = second(project, tmp_path_factory)
    try:
        for stack, name in ((project, "one"), (other, "two")):
            stack.copy_context("httpd")
            stack.write(f'[stack]\nname = "{stack.stack}"\ngateway_port = {{port10}}\ngateway_admin_port = {{port11}}\n'
                        + th3.toml() + app(name, "th3", None, f"from-{name}", probe_interval="1"))
            stack.berth("apply", "--auto-approve", timeout=600)
        for name in ("one", "two"):
            status, body = th3.get(project.ports[10], f"/{name}/sync/")
            assert (status, f"message: from-{name}" in body) == (200, True), body
        with RequestLoop(f"http://{th3.address}:{project.ports[10]}/two/sync/") as loop:
            project.berth("destroy", "--auto-approve")
        assert loop.ok > 0 and loop.failures == [], loop.failures[:5]
        url = f"http://{th3.address}:{project.ports[10]}"
        assert get(f"{url}/one/sync/")[0] == 404 and get(f"{url}/two/sync/")[0] == 200
        other.berth("destroy", "--auto-approve")
        assert th3.shared_gateway(project.ports[10]) is None
    finally:
        other.cleanup()


def test_a_new_gateway_container_keeps_the_internal_ca_clients_trust(project):
    project.copy_context("echo")
    text = STACK.replace("NAME", project.stack).replace("APP", "alpha").replace("[gateway]\n", '[gateway]\ntls = "internal"\n')
    project.write(text)
    project.berth("apply", "--auto-approve", timeout=600)

    def ca() -> str:
        path = json.loads(project.berth("output", "--json").stdout)["gateway_ca"]["local"]
        return open(path).read()

    before, [old] = ca(), gateways(project)
    project.write(text.replace("admin_port = {port11}", "admin_port = {port12}"))  # forces a new container
    project.berth("apply", "--auto-approve", timeout=600)
    [new] = gateways(project)
    assert new.id != old.id and "BEGIN CERTIFICATE" in before and ca() == before


def test_a_container_named_like_the_gateway_that_is_not_berths_is_refused_at_plan(project, docker_client):
    impostor = docker_client.containers.run("busybox:latest", ["sleep", "300"], detach=True, remove=True,
                                            name=f"berth-gateway-{project.ports[10]}", labels={"berth-test.squatter": "1"})
    try:
        project.copy_context("echo")
        project.write(STACK.replace("NAME", project.stack).replace("APP", "alpha"))
        done = project.berth("plan", check=False)
        assert done.returncode == 1 and "gateway.port" in done.stderr, done.stdout + done.stderr
        assert f"a container named {impostor.name} runs there and is not berth's gateway" in done.stderr
        impostor.reload()
        assert impostor.status == "running"  # never removed
    finally:
        impostor.remove(force=True)

