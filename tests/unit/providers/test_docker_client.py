"""docker-py is imported without paramiko for local engines (providers.docker_client),
and paramiko still loads for whoever else asks for it. Each case runs in a fresh
interpreter: what is imported is the point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"} | env
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


PROBE = """
import json, sys
{before}
import providers.docker_engine
import docker, docker.errors
loaded = "paramiko" in sys.modules
ssh = hasattr(docker.transport, "SSHHTTPAdapter")
import paramiko  # berth's own SSH code loads it on demand, after docker
print(json.dumps({{"loaded": loaded, "ssh": ssh, "later": paramiko.SSHClient.__name__}}))
"""


def test_docker_py_is_imported_without_paramiko():
    found = _run(PROBE.format(before=""))
    assert found == {"loaded": False, "ssh": False, "later": "SSHClient"}


def test_paramiko_loaded_first_gives_docker_py_its_ssh_transport():
    found = _run(PROBE.format(before="import paramiko"))
    assert found["loaded"] and found["ssh"]


def test_an_ssh_docker_host_keeps_docker_py_whole():
    found = _run(PROBE.format(before=""), DOCKER_HOST="ssh://root@127.0.0.1")
    assert found["loaded"] and found["ssh"]


def test_paramiko_is_refused_only_in_the_thread_importing_docker():
    code = """
import json, sys, threading
import providers.docker_engine
from providers import docker_client
got = {}
def other():
    import paramiko
    got["other"] = paramiko.Transport.__name__
docker_client._local.refusing = True  # as while docker's own import runs in this thread
try:
    try:
        import paramiko
        got["here"] = "loaded"
    except ImportError:
        got["here"] = "refused"
    t = threading.Thread(target=other); t.start(); t.join()
finally:
    docker_client._local.refusing = False
print(json.dumps(got))
"""
    assert _run(code) == {"here": "refused", "other": "Transport"}
