"""The gateway's API keys and TLS on an SSH host: the keys' hashes go into the gateway
through the Docker API over the host's one SSH connection, and the internal CA certifies
the host's SSH address."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess

from test_ssh_hosts import app, hosts, remote  # noqa: F401 (fixtures)


def test_keys_and_tls_internal_on_an_ssh_host(project, remote):  # noqa: F811
    th3 = remote["th3"]
    project.copy_context("httpd")
    key = secrets.token_urlsafe(24)
    (project.path / "gateway_key").write_text(key + "\n")
    project.write(f'[stack]\nname = "{{stack}}"\n\n[gateway]\nport = {{port10}}\nadmin_port = {{port11}}\n'
                  'api_keys = ["gateway_key"]\ntls = "internal"\n\n[secrets.gateway_key]\nfile = "./gateway_key"\n\n'
                  + th3.toml() + app("web", "th3", None, "behind-keys", probe_interval="1"))
    project.berth("apply", "--auto-approve", timeout=600)
    [ca] = re.findall(r"gateway CA \(th3\): (\S+)", project.berth("output").stdout)
    url = f"https://{th3.address}:{project.ports[10]}/web/sync/"

    def curl(*headers: str) -> tuple[int, str]:
        args = [a for h in headers for a in ("-H", h)]
        done = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", ca, "-w", "\n%{http_code}", *args, url],
                              capture_output=True, text=True)
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body + done.stderr

    status, body = curl()
    assert status == 401 and json.loads(body)["error"] == "unauthorized", body
    status, body = curl(f"Authorization: Api-Key {key}")
    assert status == 200 and "message: behind-keys" in body, body
    gateway = th3.shared_gateway(project.ports[10])
    assert gateway.labels["berth.address"] == "gateway@th3"
    assert gateway.exec_run(["cat", f"/var/lib/berth-gateway/keys/{project.stack}"]).output.decode().strip() \
        == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(gateway.attrs) + gateway.logs().decode()
    again = project.berth("plan", "--detailed-exitcode", check=False)
    assert again.returncode == 0, again.stdout
