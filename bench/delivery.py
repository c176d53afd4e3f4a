"""Image delivery: a locally built image of about 2 GB in 8 random layers (plus the
busybox base) sent to 1 and to 3 SSH test hosts (scripts/testhosts.sh) that lack it.

Side by side, each timed as a whole process, the image removed from every host (and
the relay registry emptied) before each run:
- berth: `berth apply` of a stack with one app per host on that image (the host's pull
  fails, no registry, so berth streams the local copy: docker save -> SSH -> docker load);
  includes berth's start, SSH connects and the container start, which the others skip;
- `docker save IMAGE | ssh HOST docker load`, one pipeline per host, all at once;
- a registry relay as Kamal 2.8 does it: Debian's docker-registry on this machine,
  `docker push` to it, then on each host, through `ssh -R` to it, `docker pull`;
- the link: `cat` of the same bytes (the `docker save` archive) through one OpenSSH
  connection per host into /dev/null, the limit for any of them.

    .venv/bin/python bench/delivery.py      # alone; bench/run.py delivery in the suite
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BERTH, REPO, goal_row, run  # noqa: E402

ROOT = Path(os.environ.get("BERTH_TESTHOSTS", "/run/berth-testhosts"))
HOSTS = ("th1", "th2", "th3")
IMAGE = "berth-bench-big:2g"
CHANGED = "berth-bench-big:2g-plus1"  # IMAGE and one more layer of CHANGED_MIB
CHANGED_MIB = 16
LAYERS, LAYER_MIB = 8, 256
REGISTRY_PORT = 5055
SSH = ["ssh", "-i", str(ROOT / "id_ed25519"), "-o", f"UserKnownHostsFile={ROOT / 'known_hosts'}",
       "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]


def address(host: str) -> str:
    return f"root@10.203.{host[2:]}.2"


def build_big() -> dict[str, object]:
    """The image, built once and then found by its tag: each layer is LAYER_MIB of
    /dev/urandom written by dd (random, so no compression helps anyone)."""
    have = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if have.returncode != 0:
        steps = "".join(f"RUN dd if=/dev/urandom of=/blob{i} bs=1M count={LAYER_MIB} 2>/dev/null\n" for i in range(LAYERS))
        dockerfile = f"FROM busybox:latest\n{steps}CMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/\"]\n"
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, "-"], input=dockerfile.encode(), check=True,
                       capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if subprocess.run(["docker", "image", "inspect", CHANGED], capture_output=True).returncode != 0:
        dockerfile = f"FROM {IMAGE}\nRUN dd if=/dev/urandom of=/changed bs=1M count={CHANGED_MIB} 2>/dev/null\n"
        subprocess.run(["docker", "build", "-q", "-t", CHANGED, "-"], input=dockerfile.encode(), check=True,
                       capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    info = json.loads(subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=True).stdout)[0]
    changed = json.loads(subprocess.run(["docker", "image", "inspect", CHANGED], capture_output=True, check=True).stdout)[0]
    return {"image": IMAGE, "id": info["Id"], "bytes": info["Size"], "layers": len(info["RootFS"]["Layers"]),
            "changed_id": changed["Id"], "changed_layer_bytes": changed["Size"] - info["Size"]}


def host_docker(host: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_HOST": f"unix://{ROOT / host / 'docker.sock'}"})


def clear(hosts: tuple[str, ...], image_id: str) -> None:
    """Remove the image (every tag of it) and its containers from the hosts. Only this
    case's image: layers other images share stay, as they would on a real host."""
    for host in hosts:
        listed = host_docker(host, "ps", "-aq", "--filter", f"ancestor={image_id}").stdout.split()
        if listed:
            host_docker(host, "rm", "-f", *listed)
        host_docker(host, "rmi", "-f", image_id)
        if host_docker(host, "image", "inspect", image_id).returncode == 0:
            raise RuntimeError(f"{host} still has {image_id[:19]}")


def timed_shell(script: str) -> float:
    return run(["bash", "-c", f"set -euo pipefail\n{script}"]).wall


def parallel(commands: list[str]) -> str:
    """Run shell commands at once; fail if any fails."""
    lines = [f"( {c} ) & pids+=($!)" for c in commands]
    return "pids=()\n" + "\n".join(lines) + '\nfor p in "${pids[@]}"; do wait "$p"; done'


def ssh(host: str, *extra: str) -> str:
    return " ".join([*SSH, *extra, address(host)])


def berth_stack(directory: Path, hosts: tuple[str, ...], image: str = IMAGE) -> None:
    text = f'[stack]\nname = "benchdeliver{len(hosts)}"\n'
    for host in hosts:
        n = host[2:]
        text += (f'[hosts.{host}]\nssh = "{address(host)}"\nidentity_file = "{ROOT / "id_ed25519"}"\n'
                 f'known_hosts = "{ROOT / "known_hosts"}"\ndocker_socket = "{ROOT / host / "docker.sock"}"\n')
        text += f'[apps.big{n}]\nimage = "{image}"\nport = 8000\nhost = "{host}"\n'
    (directory / "berth.toml").write_text(text)


class Registry:
    """Debian's docker-registry on 127.0.0.1:REGISTRY_PORT, storage in a fresh directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="berth-bench-registry-"))
        (self.dir / "config.yml").write_text(
            f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{REGISTRY_PORT}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "wb"))
        for _ in range(100):
            try:
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{REGISTRY_PORT}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not answer: {(self.dir / 'log').read_text()[-500:]}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(counts: tuple[int, ...] = (1, 3), with_registry: bool = True) -> tuple[list[dict[str, object]], dict[str, object]]:
    subprocess.run(["bash", str(REPO / "scripts/testhosts.sh"), "up"], check=True, capture_output=True)
    image = build_big()
    figures: dict[str, dict[int, float]] = {"berth": {}, "save|load": {}, "registry": {}, "link": {}, "push": {}}
    work = Path(tempfile.mkdtemp(prefix="berth-bench-delivery-"))
    archive = work / "image.tar"
    try:
        subprocess.run(f"docker save {IMAGE} > {archive}", shell=True, check=True)
        image["archive_bytes"] = archive.stat().st_size
        for count in counts:
            hosts = HOSTS[:count]
            # The link: the archive's bytes through one OpenSSH connection per host.
            figures["link"][count] = timed_shell(parallel([f"{ssh(h)} 'cat >/dev/null' < {archive}" for h in hosts]))
            clear(hosts, image["id"])
            figures["save|load"][count] = timed_shell(parallel([f"docker save {IMAGE} | {ssh(h)} docker load -q"
                                                                for h in hosts]))
            clear(hosts, image["id"])
            directory = work / f"berth{count}"
            directory.mkdir()
            berth_stack(directory, hosts)
            figures["berth"][count] = run([str(BERTH), "apply", "--auto-approve"], cwd=directory).wall
            if count == 1:
                # One layer changed: only its bytes should travel (plus the archive's
                # manifest and config).
                berth_stack(directory, hosts, CHANGED)
                stats = directory / "stats.json"
                changed = run([str(BERTH), "apply", "--auto-approve"], cwd=directory, env={"BERTH_SSH_STATS": str(stats)})
                image["changed_wall_s"] = changed.wall
                image["changed_bytes_sent"] = json.loads(stats.read_text())[hosts[0]].get("image_bytes_sent", 0)
            run([str(BERTH), "destroy", "--auto-approve"], cwd=directory, check=False)
            clear(hosts, image["changed_id"])
            clear(hosts, image["id"])
            if with_registry and shutil.which("docker-registry"):
                registry = Registry()
                try:
                    ref = f"127.0.0.1:{REGISTRY_PORT}/{IMAGE}"
                    subprocess.run(["docker", "tag", IMAGE, ref], check=True)
                    pulls = parallel([f"{ssh(h, '-o', 'ExitOnForwardFailure=yes', '-R', f'{REGISTRY_PORT}:127.0.0.1:{REGISTRY_PORT}')} "
                                      f"'docker pull -q {ref} >/dev/null && docker tag {ref} {IMAGE}'" for h in hosts])
                    start = time.perf_counter()
                    push = run(["docker", "push", ref]).wall
                    timed_shell(pulls)
                    figures["registry"][count] = time.perf_counter() - start
                    figures["push"][count] = push
                finally:
                    subprocess.run(["docker", "rmi", ref], capture_output=True)
                    registry.close()
                clear(hosts, image["id"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows(figures, image), {"image": image, "seconds": {k: {str(c): v for c, v in d.items()} for k, d in figures.items()}}


def rows(figures: dict[str, dict[int, float]], image: dict[str, object]) -> list[dict[str, object]]:
    gib = image["archive_bytes"] / 2**30
    out = []
    for count, wall in sorted(figures["berth"].items()):
        peers = {name: figures[name][count] for name in ("save|load", "registry") if count in figures[name]}
        fastest = min(peers, key=peers.get)
        link = figures["link"][count]
        note = (f"save|load {peers['save|load']:.1f} s" + (f", registry {peers['registry']:.1f} s (push {figures['push'][count]:.1f})"
                                                             if "registry" in peers else "")
                + f"; link {link:.1f} s = {gib * count / link * 1024:.0f} MiB/s in all; berth {gib * count / wall * 1024:.0f} MiB/s")
        if count == 1:
            out.append(goal_row(f"image {gib:.2f} GiB, {image['layers']} layers, to 1 host", wall, 1.0,
                                peer=f"fastest: {fastest}", peer_value=peers[fastest], note=note))
        else:
            if 1 in figures["berth"]:
                out.append(goal_row(f"image to {count} hosts vs berth to 1", wall, 1.3, peer="berth to 1 host",
                                    peer_value=figures["berth"][1], note=note))
            else:
                note += "; no 1-host run in this one, so no ratio to it"
            out.append(goal_row(f"image to {count} hosts vs fastest peer (not an issue goal)", wall, 1.0,
                                peer=f"fastest: {fastest}", peer_value=peers[fastest],
                                note="" if 1 in figures["berth"] else note))
    if "changed_bytes_sent" in image:
        layer = image["changed_layer_bytes"]
        out.append(goal_row(f"after a one-layer change ({layer / 2**20:.0f} MiB layer): bytes sent", image["changed_bytes_sent"],
                            1.05, unit="bytes", peer="the changed layer's size", peer_value=layer,
                            note=f"apply took {image['changed_wall_s']:.1f} s; goal: only that layer travels (5% for tar headers)"))
    for count, link in sorted(figures["link"].items()):
        out.append({"figure": f"link: cat of the archive through ssh to {count} host(s)", "berth": None,
                    "peer": "limit", "peer_value": link, "unit": "s"})
    return out


def main() -> None:
    from harness import save, table

    counts = tuple(int(c) for c in sys.argv[1:]) or (1, 3)
    found, extra = measure(counts)
    print(table("image delivery", found))
    print(f"saved {save({'cases': {'delivery': found}, 'extra': {'delivery': extra}})}")


if __name__ == "__main__":
    main()
