"""`berth output` and the endpoints apply ends with: the URLs berth prints are the ones
that answer."""

from __future__ import annotations

import json
import urllib.request

STACK = """
[stack]
name = "{stack}"
gateway_port = {port10}
gateway_admin_port = {port11}

[apps.web]
build = "./httpd"
port = 8000
readiness = "/ready"
predict = "/ready"
"""


def answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


def test_apply_ends_with_the_urls_and_output_lists_what_answers(project):
    project.copy_context("httpd")
    project.write(STACK)
    applied = project.berth("apply", "--auto-approve").stdout
    predict = f"http://localhost:{project.ports[10]}/web/predict"
    doc = json.loads(project.berth("output", "--json").stdout)
    assert doc["format_version"] == 1 and doc["stack"] == project.stack
    (web,) = doc["apps"]
    (direct,) = [r["url"] for r in web["replicas"]]  # the free port berth picked
    assert web["predict"] == [predict] and web["gateway"] == [predict.removesuffix("predict")]
    status = json.loads(project.berth("status", "--json").stdout)["replicas"]
    assert [r["url"] for r in status if r["address"].startswith("app.")] == [direct], "status carries the address"
    tail = applied.split("Serving on:")[1]
    assert direct in tail and predict in tail, applied
    assert answers(direct + "/ready") == 200 and answers(predict) == 200

    again = project.berth("apply", "--auto-approve").stdout
    assert "Serving on:" not in again, "a no-op apply touched nothing to list"
    assert direct in project.berth("output").stdout
