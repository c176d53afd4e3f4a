"""SSH hosts as ssh itself resolves them: a Host alias of ~/.ssh/config (HostName, User,
Port, IdentityFile), and bastions (`proxy_jump`, ~/.ssh/config's ProxyJump). The host
behind the bastion is an sshd of test host th2 listening on th2's own loopback: from this
machine 127.0.0.1:PORT is nobody, so only a connection made through th2 can reach it.
"""

from __future__ import annotations

from pathlib import Path

from test_ssh_hosts import ROOT, PrivateSshd, hosts, remote  # noqa: F401 (fixtures)

APP = '\n[apps.web]\nimage = "busybox:latest"\nport = 8000\nhost_port = {port0}\nhost = "inner"\n' \
      'command = ["httpd", "-f", "-p", "8000"]\n'


class LoopbackSshd(PrivateSshd):
    """th2's sshd again, on 127.0.0.1:PORT inside th2's network namespace only; its
    known_hosts trusts the bastion too."""

    @property
    def known_hosts(self) -> Path:
        known = self.directory / "known_hosts"
        key = (ROOT / self.host.name / "ssh_host_ed25519_key.pub").read_text().split()
        jump = (ROOT / "known_hosts").read_text()
        known.write_text(jump + f"[127.0.0.1]:{self.port} {key[0]} {key[1]}\n")
        return known


def inner_sshd(project, tmp_path, host) -> LoopbackSshd:
    directory = tmp_path / "inner-sshd"
    directory.mkdir()
    sshd = LoopbackSshd(host, project.ports[-1], directory, listen="127.0.0.1")
    sshd.start()
    return sshd


def test_a_host_behind_a_bastion_is_reached_through_proxy_jump(project, remote, tmp_path):
    th2 = remote["th2"]
    sshd = inner_sshd(project, tmp_path, th2)
    try:
        table = (f'[hosts.inner]\nssh = "root@127.0.0.1:{sshd.port}"\nproxy_jump = "root@{th2.address}"\n'
                 f'identity_file = "{ROOT / "id_ed25519"}"\nknown_hosts = "{sshd.known_hosts}"\n'
                 f'docker_socket = "{th2.socket}"\n')
        project.write('[stack]\nname = "{stack}"\n' + table + APP)
        project.berth("apply", "--auto-approve", timeout=300)
        (web,) = th2.stack_containers(project.stack).values()
        assert web.status == "running", "made on th2's engine, reached through the jump"
        assert project.berth("plan", "--detailed-exitcode", check=False).returncode == 0
        project.berth("destroy", "--auto-approve")
        assert th2.stack_containers(project.stack) == {}

        direct = table.replace(f'proxy_jump = "root@{th2.address}"\n', "")
        project.write('[stack]\nname = "{stack}"\n' + direct + APP)
        refused = project.berth("plan", check=False)
        assert refused.returncode == 1 and "host inner (root@127.0.0.1:" in refused.stderr, refused.stderr
    finally:
        sshd.stop()


def test_a_host_alias_of_ssh_config_with_its_proxy_jump(project, remote, tmp_path):
    th2 = remote["th2"]
    sshd = inner_sshd(project, tmp_path, th2)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host bastion\n  HostName {th2.address}\n  User root\n  IdentityFile {ROOT / 'id_ed25519'}\n\n"
        f"Host gpu-box\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User root\n  ProxyJump bastion\n"
        f"  IdentityFile {ROOT / 'id_ed25519'}\n")
    try:
        table = (f'[hosts.inner]\nssh = "gpu-box"\nknown_hosts = "{sshd.known_hosts}"\n'
                 f'docker_socket = "{th2.socket}"\n')
        project.write('[stack]\nname = "{stack}"\n' + table + APP)
        env = {"HOME": str(home)}
        project.berth("apply", "--auto-approve", timeout=300, env=env)
        (web,) = th2.stack_containers(project.stack).values()
        assert web.status == "running"
        assert project.berth("plan", "--detailed-exitcode", check=False, env=env).returncode == 0
        without_config = project.berth("plan", check=False)
        assert without_config.returncode == 1 and "host inner" in without_config.stderr, "the alias needs the config"
        project.berth("destroy", "--auto-approve", env=env)
        assert th2.stack_containers(project.stack) == {}
    finally:
        sshd.stop()
