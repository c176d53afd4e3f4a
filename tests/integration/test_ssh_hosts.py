"""SSH hosts end to end: the real `berth` command against simulated GPU hosts, each a
network namespace with its own sshd and its own, initially empty, dockerd
(scripts/testhosts.sh). Nothing is mocked: images really travel over SSH, probes go
through the host's tunnel, and the tests check the hosts' engines directly through
their sockets.

GPUs: no machine here has one, nor the NVIDIA runtime. th1 and th2 carry an
`nvidia-smi` STAND-IN printing canned CSV (th1: two H100, th2: one L4), so inventory,
placement and the device requests berth sends are real; starting such a container then
fails on these hosts ("could not select device driver nvidia"), and the tests assert
exactly that, plus the device requests the engine stored at create (docker inspect).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from conftest import RequestLoop
from test_secret_sync import files_holding, leaks, value

REPO = Path(__file__).resolve().parents[2]
ROOT = Path("/run/berth-testhosts")


@dataclass
class SimHost:
    name: str
    address: str
    client: docker.DockerClient

    @property
    def socket(self) -> str:
        return str(ROOT / self.name / "docker.sock")

    def toml(self, **extra: str) -> str:
        keys = {"ssh": f'"root@{self.address}"', "identity_file": f'"{ROOT / "id_ed25519"}"',
                "known_hosts": f'"{ROOT / "known_hosts"}"', "docker_socket": f'"{self.socket}"'} | extra
        return f"[hosts.{self.name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())

    def stack_containers(self, stack: str) -> dict[str, object]:
        """berth.address -> container, read from the host's own engine."""
        found = self.client.containers.list(all=True, filters={"label": f"berth.stack={stack}"})
        return {c.labels["berth.address"]: c for c in found}

    def shared_gateway(self, port: int):
        """The host's gateway on port, shared by the stacks there (no stack label), or None."""
        found = self.client.containers.list(all=True, filters={"name": f"^berth-gateway-{port}$"})
        return found[0] if found else None

    def get(self, port: int, path: str = "/") -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.address}:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except OSError:
            return 0, ""


def hostctl(*args: str) -> None:
    subprocess.run(["bash", str(REPO / "scripts/testhosts.sh"), *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def hosts() -> dict[str, SimHost]:
    hostctl("up")  # idempotent: setup.sh normally did it already
    found = {}
    for n in (1, 2, 3):
        name = f"th{n}"
        client = docker.DockerClient(base_url=f"unix://{ROOT / name / 'docker.sock'}", timeout=60)
        found[name] = SimHost(name, f"10.203.{n}.2", client)
    yield found
    for host in found.values():
        host.client.close()


@pytest.fixture
def remote(project, hosts):
    """The project, and afterwards everything of its stack removed from every test host."""
    yield hosts
    for host in hosts.values():
        for c in host.client.containers.list(all=True, filters={"label": f"berth.stack={project.stack}"}):
            c.remove(force=True, v=True)
        for port in project.ports:  # the shared gateways on the test's ports, and their volumes
            if (gateway := host.shared_gateway(port)) is not None:
                gateway.remove(force=True)
            try:
                host.client.volumes.get(f"berth-gateway-{port}").remove(force=True)
            except docker.errors.NotFound:
                pass
        for image in host.client.images.list(filters={"label": f"berth.stack={project.stack}"}):
            try:
                host.client.images.remove(image.id, force=True)
            except docker.errors.NotFound:
                pass


@dataclass
class PrivateSshd:
    """A second sshd of a test host, on a port of the test's own, so that a test can take
    "the host" away (or cut its sessions) without touching the shared listener other
    test runs may be using. Same host key, same engine; SFTP served (internal-sftp)
    unless `sftp` is False."""

    host: SimHost
    port: int
    directory: Path
    sftp: bool = True
    listen: str | None = None  # another address to listen on (the host's own loopback, say)

    def start(self) -> None:
        config = (ROOT / self.host.name / "sshd_config").read_text()
        if self.listen:
            config = config.replace(f"ListenAddress {self.host.address}", f"ListenAddress {self.listen}")
        config = config.replace("Port 22", f"Port {self.port}").replace(
            f"PidFile {ROOT / self.host.name / 'sshd.pid'}", f"PidFile {self.pidfile}")
        config = "".join(line for line in config.splitlines(keepends=True) if not line.startswith("Subsystem"))
        config += "Subsystem sftp internal-sftp\n" if self.sftp else ""
        (self.directory / "sshd_config").write_text(config)
        subprocess.run(["nsenter", f"--net=/run/netns/berth-{self.host.name}", "/usr/sbin/sshd",
                        "-f", str(self.directory / "sshd_config"), "-E", str(self.directory / "sshd.log")], check=True)
        _wait_for(lambda: self.pidfile.exists(), timeout=10)

    @property
    def pidfile(self) -> Path:
        return self.directory / "sshd.pid"

    def sessions(self) -> list[str]:
        listener = self.pidfile.read_text().strip()
        return subprocess.run(["ps", "-o", "pid=", "--ppid", listener], capture_output=True, text=True).stdout.split()

    def stop(self) -> None:
        """The listener and every session it serves."""
        if not self.pidfile.exists():
            return
        listener = self.pidfile.read_text().strip()
        subprocess.run(["kill", *self.sessions(), listener], capture_output=True)
        _wait_for(lambda: not Path(f"/proc/{listener}").exists(), timeout=10)
        self.pidfile.unlink(missing_ok=True)

    def toml(self, **extra: str) -> str:
        return self.host.toml(ssh=f'"root@{self.host.address}:{self.port}"', known_hosts=f'"{self.known_hosts}"', **extra)

    @property
    def known_hosts(self) -> Path:
        known = self.directory / "known_hosts"
        key = (ROOT / self.host.name / "ssh_host_ed25519_key.pub").read_text().split()
        known.write_text(f"[{self.host.address}]:{self.port} {key[0]} {key[1]}\n")
        return known


@pytest.fixture
def private_sshd(project, tmp_path):
    started = []

    def start(host: SimHost, sftp: bool = True) -> PrivateSshd:
        directory = tmp_path / f"sshd-{host.name}"
        directory.mkdir()
        sshd = PrivateSshd(host, project.ports[-1 - len(started)], directory, sftp)
        sshd.start()
        started.append(sshd)
        return sshd

    yield start
    for sshd in started:
        sshd.stop()


def app(name: str, host: str, port: str | None, message: str, **extra: str) -> str:
    """An httpd app on host; port None: none fixed (served apps with rolling deploys)."""
    fixed = [f"host_port = {port}"] if port else []
    lines = [f"[apps.{name}]", 'build = "./httpd"', "port = 8000", *fixed,
             'readiness = "/ready"', f'host = "{host}"', f'env = {{ MESSAGE = "{message}"{extra.pop("env", "")} }}']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def stats(project, *args: str, check: bool = True, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run berth with BERTH_SSH_STATS and return its per-host connection figures."""
    path = project.path / "ssh-stats.json"
    path.unlink(missing_ok=True)
    result = project.berth(*args, check=check, env={**(env or {}), "BERTH_SSH_STATS": str(path)})
    return result, json.loads(path.read_text()) if path.exists() else {}


def test_two_hosts_apply_serve_noop_then_change_touches_one_host(project, remote):
    th1, th2 = remote["th1"], remote["th2"]
    project.copy_context("httpd")
    base = f'[stack]\nname = "{{stack}}"\n' + th1.toml() + th2.toml()
    # Both apps on one port: each host publishes its own.
    project.write(base + app("a", "th1", "{port0}", "on-th1") + app("b", "th2", "{port0}", "on-th2"))
    assert th1.stack_containers(project.stack) == {}

    out, figures = stats(project, "apply", "--auto-approve")
    assert "Apply complete! Resources: 4 added" in out.stdout
    assert "message: on-th1" in th1.get(project.ports[0])[1]
    assert "message: on-th2" in th2.get(project.ports[0])[1]
    # The image travelled: it is on each host's own engine, sent once per host.
    for host in (th1, th2):
        assert host.client.images.list(filters={"label": f"berth.stack={project.stack}"})
        assert figures[host.name]["connections"] == 1
        assert figures[host.name]["image_bytes_sent"] > 0
    before = {**th1.stack_containers(project.stack), **th2.stack_containers(project.stack)}
    assert set(before) == {"app.a.container[0]@th1", "app.b.container[0]@th2"}

    plan, figures = stats(project, "plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for host in (th1, th2):  # one connection, one channel (keep-alive), nothing sent
        assert figures[host.name] == figures[host.name] | {"connections": 1, "channels": 1, "image_bytes_sent": 0}

    project.write(base + app("a", "th1", "{port0}", "on-th1") + app("b", "th2", "{port0}", "on-th2-v2"))
    plan = project.berth("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2
    assert "app.b.container[0]@th2 must be replaced" in plan.stdout
    assert "@th1" not in plan.stdout.split("berth will perform the following actions:")[1]
    out, figures = stats(project, "apply", "--auto-approve")
    assert "Resources: 1 added, 0 changed, 1 destroyed." in out.stdout
    assert figures["th2"]["image_bytes_sent"] == 0  # env changed, not the image
    assert th1.stack_containers(project.stack)["app.a.container[0]@th1"].id == before["app.a.container[0]@th1"].id
    assert th2.stack_containers(project.stack)["app.b.container[0]@th2"].id != before["app.b.container[0]@th2"].id
    assert "message: on-th2-v2" in th2.get(project.ports[0])[1]

    project.berth("destroy", "--auto-approve")
    assert th1.stack_containers(project.stack) == {} and th2.stack_containers(project.stack) == {}
    assert not th1.client.images.list(filters={"label": f"berth.stack={project.stack}"})


def test_gpu_oversubscription_and_missing_type_are_plan_errors(project, remote):
    th1 = remote["th1"]
    project.copy_context("httpd")
    base = f'[stack]\nname = "{{stack}}"\n' + th1.toml()
    project.write(base + app("llm", "th1", "{port0}", "x", gpus="2")
                  + app("embed", "th1", "{port1}", "y", accelerator='"H100"')
                  + app("vision", "th1", "{port2}", "z", accelerator='"A100:1"'))
    plan = project.berth("plan", check=False)
    assert plan.returncode == 1
    assert ("host th1 has 2 GPUs (2 × NVIDIA H100 80GB HBM3), but apps llm (2 GPUs), embed (1 H100) ask for 3"
            in plan.stderr)
    assert "app vision asks for accelerator A100, but host th1 has none (it has 2 × NVIDIA H100 80GB HBM3)" in plan.stderr
    assert "Traceback" not in plan.stderr
    apply = project.berth("apply", "--auto-approve", check=False)
    assert apply.returncode == 1
    assert th1.stack_containers(project.stack) == {}  # nothing touched


def test_device_requests_name_the_assigned_gpus(project, remote):
    th1, th2 = remote["th1"], remote["th2"]
    project.copy_context("httpd")
    base = f'[stack]\nname = "{{stack}}"\n' + th1.toml() + th2.toml()
    # `l4` names no host: placement puts it on th2, the host that has an L4 free.
    stack = (base + app("llm", "th1", "{port0}", "x", accelerator='"H100"')
             + app("embed", "th1", "{port1}", "y", gpus="1")
             + app("l4", "th1", "{port2}", "z", accelerator='"L4"').replace('host = "th1"\n', ""))
    project.write(stack)
    apply = project.berth("apply", "--auto-approve", check=False)
    # The stand-in hosts have no NVIDIA runtime: the engine refuses to start what it created.
    assert apply.returncode == 1
    assert 'could not select device driver "nvidia"' in apply.stderr
    assert "the engine on th1 has no NVIDIA runtime: install nvidia-container-toolkit there" in apply.stderr
    created = {**th1.stack_containers(project.stack), **th2.stack_containers(project.stack)}
    assert set(created) == {"app.llm.container[0]@th1", "app.embed.container[0]@th1", "app.l4.container[0]@th2"}
    expected = {"app.llm.container[0]@th1": "0", "app.embed.container[0]@th1": "1", "app.l4.container[0]@th2": "0"}
    for address, device in expected.items():
        info = created[address].attrs
        assert info["HostConfig"]["DeviceRequests"] == [
            {"Driver": "nvidia", "Count": 0, "DeviceIDs": [device], "Capabilities": [["gpu"]], "Options": {}}]
        assert f"NVIDIA_VISIBLE_DEVICES={device}" in info["Config"]["Env"]
    # The next plan keeps every assignment: the same devices, on the same hosts.
    plan = json.loads(project.berth("plan", "--json").stdout)
    after = {c["address"]: c["after"]["gpus"] for c in plan["changes"] if c["type"] == "container"}
    assert after == {address: [device] for address, device in expected.items()}


def test_the_vllm_truss_as_it_is_is_placed_on_the_host_with_its_l4(project, remote):
    """examples/truss-vllm unchanged, as an app of a berth.toml with SSH hosts: it names
    no host and asks for an L4, so placement puts it on th2 (th1 has H100s only)."""
    import secrets
    import shutil

    th1, th2 = remote["th1"], remote["th2"]
    shutil.copytree(REPO / "examples" / "truss-vllm", project.path / "vllm")
    project.write(f'[stack]\nname = "{{stack}}"\n' + th1.toml() + th2.toml()
                  + '[apps.llm]\nfrom = "vllm"\nhost_port = {port0}\n')
    token = "hf_" + secrets.token_hex(12)
    plan = project.berth("plan", "--detailed-exitcode", check=False, env={"HF_ACCESS_TOKEN": token})
    assert plan.returncode == 2, plan.stderr
    assert "gpus                = 1 x L4" in plan.stdout
    # built on berth's own engine and sent to th2: the base is pulled (and looked for) here
    assert "vllm/vllm-openai:latest is a mutable tag: it is not on host local and will be pulled" in plan.stdout
    document = json.loads(project.berth("plan", "--json", env={"HF_ACCESS_TOKEN": token}).stdout)
    containers = {c["address"]: c["after"] for c in document["changes"] if c["type"] == "container"}
    assert list(containers) == ["app.llm.container[0]@th2"] and containers["app.llm.container[0]@th2"]["gpus"] == ["0"]
    assert token not in plan.stdout + plan.stderr + json.dumps(document)


def test_unknown_and_changed_host_keys_are_refused(project, remote, tmp_path):
    th1 = remote["th1"]
    project.copy_context("httpd")
    known = tmp_path / "known_hosts"
    known.write_text("")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(ROOT / "th1/ssh_host_ed25519_key.pub")],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    stack = f'[stack]\nname = "{{stack}}"\n' + app("a", "th1", "{port0}", "x")
    project.write(stack + th1.toml(known_hosts=f'"{known}"'))
    plan = project.berth("plan", check=False)
    assert plan.returncode == 1
    assert f"host th1 (root@10.203.1.2:22): unknown host key ssh-ed25519 {fingerprint}" in plan.stderr
    assert known.read_text() == ""

    project.write(stack + th1.toml(known_hosts=f'"{known}"', accept_new_host_key="true"))
    project.berth("plan")
    assert known.read_text().startswith("10.203.1.2 ssh-ed25519 ")

    # Another key recorded for the address: refused, even with accept_new_host_key.
    other = (ROOT / "th2/ssh_host_ed25519_key.pub").read_text().split()
    known.write_text(f"10.203.1.2 {other[0]} {other[1]}\n")
    plan = project.berth("plan", check=False)
    assert plan.returncode == 1
    assert f"HOST KEY CHANGED: it offered ssh-ed25519 {fingerprint}" in plan.stderr
    assert th1.stack_containers(project.stack) == {}


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_host_down_mid_apply_leaves_the_other_converged_and_next_apply_converges(project, remote, private_sshd):
    th1, th2 = remote["th1"], remote["th2"]
    sshd = private_sshd(th2)
    project.copy_context("httpd")
    project.write(f'[stack]\nname = "{{stack}}"\n' + th1.toml() + sshd.toml()
                  + app("a", "th1", "{port0}", "on-th1", env=', READY_DELAY = "3"')
                  + app("b", "th2", "{port0}", "on-th2", env=', READY_DELAY = "3"'))
    berth = subprocess.Popen(project.argv("apply", "--auto-approve", "--no-color"), cwd=project.path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once berth has made b's container on th2 and recorded it (its readiness takes 3 s),
        # th2 goes away. Not as soon as the container exists there: the engine's answer to
        # the create may still be on its way back over the connection the stop cuts.
        _wait_for(lambda: "app.b.container[0]@th2" in th2.stack_containers(project.stack)
                  and "app.b.container[0]@th2" in project.berth("state", "list", check=False).stdout.split())
        sshd.stop()
        stdout, stderr = berth.communicate(timeout=120)
    finally:
        if berth.poll() is None:
            berth.kill()
    assert berth.returncode == 1, stdout + stderr
    assert f"host th2 (root@10.203.2.2:{sshd.port}) cannot be reached: Connection refused" in stderr
    assert "message: on-th1" in th1.get(project.ports[0])[1]  # th1 finished
    state = {line for line in project.berth("state", "list").stdout.split()}
    assert {"app.a.image@th1", "app.a.container[0]@th1", "app.b.image@th2", "app.b.container[0]@th2"} <= state
    shown = json.loads(project.berth("state", "show", "app.b.container[0]@th2", "--json").stdout)
    assert shown["status"] == "created"  # made, readiness never confirmed
    assert json.loads(project.berth("state", "show", "app.a.container[0]@th1", "--json").stdout)["status"] == "ready"

    sshd.start()  # the host is back
    project.berth("apply", "--auto-approve")
    assert "message: on-th2" in th2.get(project.ports[0])[1]
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0


def test_a_dropped_connection_is_retried_once(project, remote, private_sshd):
    th1 = remote["th1"]
    sshd = private_sshd(th1)
    project.copy_context("httpd")
    project.write(f'[stack]\nname = "{{stack}}"\n' + sshd.toml()
                  + app("a", "th1", "{port0}", "x", env=', READY_DELAY = "3"'))
    path = project.path / "ssh-stats.json"
    berth = subprocess.Popen(project.argv("apply", "--auto-approve", "--no-color"), cwd=project.path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "BERTH_SSH_STATS": str(path)})
    try:
        _wait_for(lambda: "app.a.container[0]@th1" in th1.stack_containers(project.stack))
        # End berth's SSH session on the host (the sshd child serving it), not the listener.
        sessions = sshd.sessions()
        assert sessions, "berth holds no SSH session on th1"
        subprocess.run(["kill", *sessions], check=True)
        stdout, stderr = berth.communicate(timeout=120)
    finally:
        if berth.poll() is None:
            berth.kill()
    assert berth.returncode == 0, stdout + stderr
    figures = json.loads(path.read_text())["th1"]
    assert figures["drops"] == 1 and figures["connections"] == 2
    assert th1.get(project.ports[0], "/ready")[0] == 200


def _descendants(pid: str) -> list[str]:
    """Commands of every process under pid, from one `ps` snapshot."""
    rows = [line.split(None, 2) for line in subprocess.run(
        ["ps", "-eo", "pid=,ppid=,comm="], capture_output=True, text=True).stdout.splitlines()]
    found, frontier = [], {pid}
    while frontier:
        below = [r for r in rows if len(r) == 3 and r[1] in frontier]
        found += [r[2] for r in below]
        frontier = {r[0] for r in below}
    return found


def test_berth_starts_no_process_on_the_host_and_leaves_no_session(project, remote, private_sshd):
    """The Docker API travels over direct-streamlocal channels: nothing runs on the host
    for it (docker-py's ssh:// would run a `docker system dial-stdio` per pool), and once
    berth exits its one session is gone."""
    th1 = remote["th1"]
    sshd = private_sshd(th1)
    project.copy_context("httpd")
    project.write(f'[stack]\nname = "{{stack}}"\n' + sshd.toml()
                  + "".join(app(f"a{i}", "th1", f"{{port{i}}}", f"m{i}", env=', READY_DELAY = "1"') for i in range(3)))
    listener = sshd.pidfile.read_text().strip()
    berth = subprocess.Popen(project.argv("apply", "--auto-approve", "--no-color"), cwd=project.path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[str] = set()
    while berth.poll() is None:  # sample what runs under the host's sshd during the apply
        seen.update(_descendants(listener))
        time.sleep(0.05)
    stdout, stderr = berth.communicate()
    assert berth.returncode == 0, stdout + stderr
    assert seen and seen <= {"sshd"}, seen  # berth's session was seen, and nothing else ran
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    _wait_for(lambda: not sshd.sessions(), timeout=5)


# Secrets on SSH hosts: written over SFTP -------------------------------------------------

SECRET_STACK = """
[secrets.tok]
env = "W7_TOK"
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cat(container, name: str) -> str:
    code, out = container.exec_run(["cat", f"/secrets/{name}"])
    assert code == 0, out
    return out.decode()


def test_secrets_on_ssh_hosts_are_synced_rotated_removed_and_never_shown(project, remote):
    """A secret on th1 (mounted) and th3 (mounted and in secret_env), each host with its
    own secrets_dir (the test hosts share this machine's file system), through the real
    berth: served from /secrets/NAME, 0600 in 0700 directories, a no-op plan on one
    SFTP channel per host, rotation, removal, destroy; the value nowhere else."""
    th1, th3 = remote["th1"], remote["th3"]
    roots = {h.name: project.path / f"secrets-on-{h.name}" for h in (th1, th3)}
    project.copy_context("httpd")
    hosts = th1.toml(secrets_dir=f'"{roots["th1"]}"') + th3.toml(secrets_dir=f'"{roots["th3"]}"')
    a = app("a", "th1", "{port0}", "on-th1", secrets='["tok"]')
    b = app("b", "th3", "{port1}", "on-th3", secret_env='{ TOKEN = "tok" }')
    project.write(f'[stack]\nname = "{{stack}}"\n' + SECRET_STACK + hosts + a + b)
    old, new = value("old"), value("new")
    outputs: list[str] = []

    def berth(*args: str, token: str, check: bool = True) -> subprocess.CompletedProcess:
        result = project.berth(*args, check=check, env={"W7_TOK": token})
        outputs.append(result.stdout + result.stderr)
        return result

    plan = berth("plan", token=old)
    assert "# app.a.secret.tok@th1 will be created" in plan.stdout
    assert "# app.b.secret.tok@th3 will be created" in plan.stdout
    assert "value  = (sensitive value)" in plan.stdout
    assert "Apply complete! Resources: 6 added" in berth("apply", "--auto-approve", token=old).stdout

    containers = {**th1.stack_containers(project.stack), **th3.stack_containers(project.stack)}
    on_a, on_b = containers["app.a.container[0]@th1"], containers["app.b.container[0]@th3"]
    for host, container, name in ((th1, on_a, "a"), (th3, on_b, "b")):
        assert _cat(container, "tok") == old
        target = roots[host.name] / project.stack / name / "tok"
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert mounts["/secrets/tok"]["Source"] == str(target)
        assert mounts["/secrets/tok"]["Type"] == "bind" and mounts["/secrets/tok"]["RW"] is False
        assert _mode(target) == 0o600
        assert _mode(target.parent) == _mode(target.parent.parent) == _mode(roots[host.name]) == 0o700
        assert sorted(p.name for p in target.parent.iterdir()) == ["tok"]  # no temporary file left
    assert f"TOKEN={old}" in on_b.attrs["Config"]["Env"]  # asked for with secret_env
    assert not leaks([old], env=json.dumps(on_a.attrs["Config"]["Env"]))  # only mounted

    # No changes, read on one Docker channel and one SFTP channel per host.
    plan, figures = stats(project, "plan", "--detailed-exitcode", check=False, env={"W7_TOK": old})
    assert plan.returncode == 0, plan.stdout + plan.stderr
    outputs.append(plan.stdout + plan.stderr)
    for host in (th1, th3):
        assert figures[host.name] == figures[host.name] | {
            "connections": 1, "channels": 2, "channels_docker": 1, "channels_sftp": 1, "image_bytes_sent": 0}

    # Rotation: th1's container restarts (same ID) and reads the new file; th3's, which
    # also has it in its environment, is replaced.
    started = on_a.attrs["State"]["StartedAt"]
    plan = berth("plan", "--detailed-exitcode", token=new, check=False)
    assert plan.returncode == 2
    assert "# app.a.secret.tok@th1 will be updated in place (value changed)" in plan.stdout
    assert "(secret tok changed: the container is restarted to read it)" in plan.stdout
    assert "(secret tok changed; as environment variable TOKEN it needs a new container)" in plan.stdout
    assert "1 added, 3 changed, 1 destroyed" in berth("apply", "--auto-approve", token=new).stdout
    containers = {**th1.stack_containers(project.stack), **th3.stack_containers(project.stack)}
    now_a, now_b = containers["app.a.container[0]@th1"], containers["app.b.container[0]@th3"]
    assert now_a.id == on_a.id and now_a.attrs["State"]["StartedAt"] != started and now_a.attrs["State"]["Running"]
    assert _cat(now_a, "tok") == new
    assert now_b.id != on_b.id and _cat(now_b, "tok") == new and f"TOKEN={new}" in now_b.attrs["Config"]["Env"]
    assert berth("plan", "--detailed-exitcode", token=new, check=False).returncode == 0
    assert "message: on-th1" in th1.get(project.ports[0])[1]

    # a stops using it: its file and the directories that emptied go; th1 then plans
    # without SFTP (the stack has no secret there any more), th3 still lists its own.
    a_plain = app("a", "th1", "{port0}", "on-th1")
    project.write(f'[stack]\nname = "{{stack}}"\n' + SECRET_STACK + hosts + a_plain + b)
    applied = berth("apply", "--auto-approve", token=new)
    assert "app.a.secret.tok@th1: Removal complete" in applied.stdout, applied.stdout
    assert not (roots["th1"] / project.stack).exists() and roots["th1"].is_dir()
    assert (roots["th3"] / project.stack / "b" / "tok").is_file()
    plan, figures = stats(project, "plan", "--detailed-exitcode", check=False, env={"W7_TOK": new})
    assert plan.returncode == 0, plan.stdout + plan.stderr
    outputs.append(plan.stdout + plan.stderr)
    assert figures["th1"]["channels"] == 1 and "channels_sftp" not in figures["th1"]
    assert figures["th3"]["channels_sftp"] == 1

    # Destroy: every file (a temporary one a crash left too), and the directories.
    (roots["th3"] / project.stack / "b" / ".tok.tmp-0badc0de").write_text("left by a crash")
    assert "Destroy complete!" in berth("destroy", "--auto-approve", token=new).stdout
    assert list(roots["th1"].iterdir()) == [] and list(roots["th3"].iterdir()) == []
    assert th1.stack_containers(project.stack) == {} and th3.stack_containers(project.stack) == {}

    # The values: in no output, nothing berth stores, no label.
    state = project.berth("state", "pull").stdout
    history = project.berth("state", "history", "--json").stdout
    assert not leaks([old, new], outputs="\n".join(outputs), state=state, history=history,
                     labels=json.dumps([on_a.labels, on_b.labels, now_a.labels, now_b.labels]))
    assert not files_holding(project.path / ".berth", [old, new])


def test_a_host_without_sftp_fails_a_stack_with_secrets_and_plans_one_without(project, remote, private_sshd):
    th1 = remote["th1"]
    sshd = private_sshd(th1, sftp=False)
    project.copy_context("httpd")
    base = f'[stack]\nname = "{{stack}}"\n' + SECRET_STACK + sshd.toml(secrets_dir=f'"{project.path / "s"}"')
    project.write(base + app("a", "th1", "{port0}", "x", secrets='["tok"]'))
    plan = project.berth("plan", check=False, env={"W7_TOK": value("v")})
    assert plan.returncode == 1
    assert (f"host th1 (root@10.203.1.2:{sshd.port}): the SSH server refused an SFTP session" in plan.stderr
            and "enable the `Subsystem sftp` line of its sshd_config" in plan.stderr), plan.stderr
    assert "Traceback" not in plan.stderr
    project.write(base + app("a", "th1", "{port0}", "x"))  # no secret: SFTP is never asked for
    out, figures = stats(project, "plan")
    assert figures["th1"]["channels"] == 1


def test_sftp_secret_files_reconnect_after_a_drop_and_find_a_users_home(project, remote, private_sshd):
    """The provider itself over a real sshd: a session cut between two operations is
    made again (once) for the next; and a login other than root keeps its files under
    its home, listed before that home is known (relative to it, as SFTP resolves)."""
    from providers.ssh.secret_files import SftpSecretFiles
    from providers.ssh.host import SshHost, SshTarget

    th1 = remote["th1"]
    sshd = private_sshd(th1)
    root = project.path / "secrets"
    target = SshTarget(name="th1", user="root", address=th1.address, port=sshd.port,
                       identity_file=str(ROOT / "id_ed25519"), known_hosts=str(sshd.known_hosts),
                       docker_socket=th1.socket, secrets_dir=str(root))
    host = SshHost(target, builder=lambda: None)
    home_root = Path("/root/.local/state/berth/secrets") / project.stack
    made = [p for p in home_root.parents if not p.exists()]  # for the clean-up: root's home is this machine's
    try:
        parts = (project.stack, "web", "tok")
        assert host.write_secret(parts, b"v1") == str(root.joinpath(*parts))
        assert host.observe(project.stack).secrets == (("web", "tok"),)
        subprocess.run(["kill", *sshd.sessions()], check=True)
        _wait_for(lambda: not sshd.sessions(), timeout=10)
        assert host.write_secret(parts, b"v2") == str(root.joinpath(*parts))
        assert root.joinpath(*parts).read_bytes() == b"v2"
        figures = host.stats()
        assert (figures["connections"], figures["channels_sftp"]) == (2, 2)

        # Logged in as root but taken for another user: ROOT is that login's home's.
        as_user = SftpSecretFiles("th1", host.conn.sftp, user="someone")
        written = as_user.write((project.stack, "web", "tok"), b"v3")
        assert written == str(home_root / "web" / "tok") and Path(written).read_bytes() == b"v3"
        fresh = SftpSecretFiles("th1", host.conn.sftp, user="someone")  # home not asked yet
        assert fresh.list(project.stack) == (("web", "tok"),)
        fresh.remove((project.stack, "web", "tok"))
        assert not home_root.exists()
        host.remove_secret(parts)
        assert not (root / project.stack).exists() and host.observe(project.stack).secrets == ()
    finally:
        host.close()
        shutil.rmtree(home_root, ignore_errors=True)
        for directory in made:  # innermost first; one another run uses now is not empty
            try:
                directory.rmdir()
            except OSError:
                break


def test_a_gateway_on_an_ssh_host_routes_and_rolls_its_apps_without_a_failed_request(project, remote):
    """The gateway image travels like an app's; its routes are loaded through the Docker
    API over SSH (its admin API listens only inside its container). A replace of the
    app rolls: a client of the gateway sees no failed request. th3's engine runs without
    Docker's userland proxy, where a gateway on a network apart from the replicas' could
    not reach their published ports."""
    th3 = remote["th3"]
    project.copy_context("httpd")
    head = f'[stack]\nname = "{{stack}}"\ngateway_port = {{port10}}\ngateway_admin_port = {{port11}}\n' + th3.toml()
    project.write(head + app("web", "th3", None, "via-gateway", replicas="2", probe_interval="1"))
    project.berth("apply", "--auto-approve", timeout=600)
    assert th3.shared_gateway(project.ports[10]).labels["berth.address"] == "gateway@th3"
    status, body = th3.get(project.ports[10], "/web/sync/")
    assert (status, "message: via-gateway" in body) == (200, True)
    with urllib.request.urlopen(f"http://{th3.address}:{project.ports[10]}/web/health", timeout=5) as response:
        assert response.read().decode().strip() == "ok" and response.headers["X-Request-Id"]
    assert th3.get(project.ports[11], "/config/") == (0, "")  # admin API: not on the host
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0

    project.write(head + app("web", "th3", None, "rolled", replicas="2", probe_interval="1"))
    with RequestLoop(f"http://{th3.address}:{project.ports[10]}/web/") as loop:
        time.sleep(0.5)
        project.berth("apply", "--auto-approve", timeout=600)
        time.sleep(0.5)
    assert loop.failures == [] and loop.ok > 10, (loop.failures[:5], loop.ok)
    assert "message: via-gateway" in loop.bodies[0] and "message: rolled" in loop.bodies[-1]
    assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
    project.berth("destroy", "--auto-approve")
    assert th3.stack_containers(project.stack) == {}
