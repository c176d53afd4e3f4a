"""Issue 6 end to end: saved plans, targeting, replace, refresh, state pull/push/rm/mv,
import, history, rollback, status, logs and a corrupt store, each with its refusals,
driven through the real `berth` command against the real Docker engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

STACK = """
[stack]
name = "{stack}"

[apps.web]
build = "./httpd"
port = 8000
host_port = {port0}
readiness = "/ready"
liveness = "/health"
env = { MESSAGE = "web-v1" }

[apps.api]
build = "./httpd"
port = 8000
host_port = {port1}
readiness = "/ready"
env = { MESSAGE = "api-v1" }
depends_on = ["web"]
"""


def ids(project) -> dict[str, str]:
    return {c.labels["berth.address"]: c.id for c in project.containers()}


def serial(project) -> int:
    return json.loads(project.berth("state", "pull").stdout)["serial"]


def plan_exit(project, *args: str) -> int:
    return project.berth("plan", "--detailed-exitcode", *args, check=False).returncode


def message(project, port_index: int) -> str:
    return project.get(project.ports[port_index])[1]


def test_saved_plan_applies_exactly_once_and_refuses_stale_or_foreign_state(project):
    project.copy_context("httpd")
    project.write(STACK)
    out = project.berth("plan", "--out", "first.plan").stdout
    assert "Saved the plan to: first.plan" in out
    saved = json.loads((project.path / "first.plan").read_text())
    assert saved["plan"]["lineage"] is None and saved["plan"]["serial"] == 0
    assert saved["config"]["stack"]["apps"]["web"]["env"] == {"MESSAGE": "web-v1"}

    # The file changes after the plan was made: the saved plan still applies what it says.
    project.write(STACK.replace("web-v1", "web-v9"))
    applied = project.berth("apply", "first.plan")  # no prompt for a saved plan
    assert "Apply complete! Resources: 4 added" in applied.stdout
    assert "message: web-v1" in message(project, 0)

    again = project.berth("apply", "first.plan", check=False)
    assert again.returncode == 1
    assert "stale plan: state changed since the plan was made" in again.stderr
    assert "Traceback" not in again.stderr

    project.berth("plan", "--out", "second.plan")
    before = serial(project)
    project.berth("refresh")  # nothing drifted: writes nothing, so the plan stays fresh
    assert serial(project) == before
    project.berth("state", "rm", "app.api.image@local")  # state rm moves the serial
    stale = project.berth("apply", "second.plan", check=False)
    assert stale.returncode == 1 and f"serial {before} then, {before + 1} now" in stale.stderr

    project.berth("plan", "--out", "third.plan")
    other = json.loads(project.berth("state", "pull").stdout) | {"lineage": "another-lineage"}
    (project.path / "other.json").write_text(json.dumps(other))
    project.berth("state", "push", "--force", "other.json")
    foreign = project.berth("apply", "third.plan", check=False)
    assert foreign.returncode == 1 and "saved plan does not match this state" in foreign.stderr
    assert "message: web-v1" in message(project, 0)  # refused plans touched nothing


def test_target_plans_only_the_address_and_its_dependencies(project):
    project.copy_context("httpd")
    project.write(STACK)
    plan = project.berth("plan", "--target", "app.api@local").stdout
    assert "Warning: Resource targeting is in effect" in plan
    # api depends on web, so web comes along; both images too.
    assert "Plan: 4 to add" in plan
    only_web = project.berth("apply", "--auto-approve", "--target", "app.web.container[0]")
    assert "Resource targeting is in effect" in only_web.stdout
    assert "Apply complete! Resources: 2 added" in only_web.stdout  # web's image and container
    assert set(ids(project)) == {"app.web.container[0]@local"}
    nothing = project.berth("plan", "--target", "app.web@gpu1").stdout
    assert "target app.web@gpu1 matches no resource" in nothing and "No changes." in nothing
    bad = project.berth("plan", "--target", "web", check=False)
    assert bad.returncode == 1 and "selects no address" in bad.stderr
    assert plan_exit(project) == 2  # api is still to be created
    project.berth("apply", "--auto-approve")
    assert plan_exit(project) == 0


def test_replace_forces_a_new_container_and_refresh_false_contacts_no_host(project, docker_client):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = ids(project)
    plan = project.berth("plan", "--replace", "app.web.container[0]@local").stdout
    assert "replacement requested with --replace" in plan and "Plan: 1 to add, 0 to change, 1 to destroy." in plan
    project.berth("apply", "--auto-approve", "--replace", "app.web.container[0]@local")
    after = ids(project)
    assert after["app.web.container[0]@local"] != before["app.web.container[0]@local"]
    assert after["app.api.container[0]@local"] == before["app.api.container[0]@local"]
    refused = project.berth("plan", "--replace", "app.web.image@local", check=False)
    assert refused.returncode == 1 and "only containers can be replaced" in refused.stderr

    # With no engine reachable at all, --refresh=false still plans, from state alone.
    docker_client.api.remove_container(after["app.api.container[0]@local"], force=True)
    unreachable = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    offline = project.berth("plan", "--refresh=false", "--detailed-exitcode", env=unreachable, check=False)
    assert offline.returncode == 0, offline.stderr
    assert project.berth("plan", env=unreachable, check=False).returncode == 1
    assert "will be created (container no longer exists" in project.berth("plan").stdout


def test_refresh_shows_drift_then_writes_it(project, docker_client):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    before = serial(project)
    docker_client.api.remove_container(ids(project)["app.api.container[0]@local"], force=True)
    out = project.berth("refresh").stdout
    assert "Drift: the hosts no longer have what state records" in out
    assert "app.api.container[0]@local: container" in out and "no longer exists on host local" in out
    assert out.index("Drift") < out.index("State updated")
    assert serial(project) == before + 1
    assert "app.api.container[0]@local" not in project.berth("state", "list").stdout
    assert "No drift" in project.berth("refresh").stdout
    assert serial(project) == before + 1


def test_state_pull_push_refuses_older_or_foreign_states(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    pulled = project.berth("state", "pull").stdout
    (project.path / "old.json").write_text(pulled)
    project.berth("state", "rm", "app.api")  # serial moves on
    lower = project.berth("state", "push", "old.json", check=False)
    assert lower.returncode == 1
    assert "lower than the stored serial" in lower.stderr and "--force" in lower.stderr
    foreign = json.loads(pulled) | {"lineage": "not-this-one", "serial": 999}
    (project.path / "foreign.json").write_text(json.dumps(foreign))
    refused = project.berth("state", "push", "foreign.json", check=False)
    assert refused.returncode == 1 and "has lineage not-this-one" in refused.stderr
    (project.path / "junk.json").write_text("{not json")
    junk = project.berth("state", "push", "junk.json", check=False)
    assert junk.returncode == 1 and "is not a berth state" in junk.stderr
    project.berth("state", "push", "--force", "old.json")
    assert "app.api.container[0]@local" in project.berth("state", "list").stdout
    assert plan_exit(project) == 0


def test_state_rm_forgets_without_touching(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    kept = ids(project)["app.api.container[0]@local"]
    out = project.berth("state", "rm", "app.api").stdout
    assert "Removed app.api.container[0]@local" in out and "Removed app.api.image@local" in out
    project.write(STACK.split("[apps.api]")[0])  # api leaves the file too
    plan = project.berth("plan").stdout
    assert "No changes." in plan  # forgotten: neither adopted nor deleted
    project.berth("destroy", "--auto-approve")
    assert [c.id for c in project.containers()] == [kept]  # destroy left it alone
    missing = project.berth("state", "rm", "app.nope", check=False)
    assert missing.returncode == 1 and "no resource in state matches app.nope" in missing.stderr


def test_state_mv_keeps_the_container_of_a_renamed_app(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    web = ids(project)["app.web.container[0]@local"]
    renamed = STACK.replace("[apps.web]", "[apps.front]").replace('depends_on = ["web"]', 'depends_on = ["front"]')
    project.write(renamed)
    assert "app.front.container[0]@local will be created" in project.berth("plan").stdout  # without mv
    out = project.berth("state", "mv", "app.web", "app.front").stdout
    assert "Moved app.web.container[0]@local to app.front.container[0]@local" in out
    plan = project.berth("plan").stdout
    assert "app.front.container[0]@local will be updated in place" in plan
    assert f'~ name              = "berth-{project.stack}-web-0" -> "berth-{project.stack}-front-0"' in plan
    assert "must be replaced" not in plan and "will be created" not in plan
    project.berth("apply", "--auto-approve")
    (container,) = [c for c in project.containers() if c.id == web]  # same container ID
    assert container.name == f"berth-{project.stack}-front-0"
    assert container.labels["berth.address"] == "app.web.container[0]@local"  # labels cannot change
    assert plan_exit(project) == 0
    assert "message: web-v1" in message(project, 0)
    taken = project.berth("state", "mv", "app.api.container[0]@local", "app.front.container[0]@local", check=False)
    assert taken.returncode == 1 and "already in state" in taken.stderr


def test_import_adopts_a_container_started_by_hand(project, docker_client):
    serve = "mkdir -p /w && echo hand > /w/index.html && exec httpd -f -p 8000 -h /w"
    project.write(f"""
        [stack]
        name = "{{stack}}"
        [apps.files]
        image = "busybox:latest"
        command = "{serve}"
        port = 8000
        host_port = {{port0}}
        readiness = "/"
        restart = "unless-stopped"
    """)
    hand = docker_client.containers.run(
        "busybox:latest", ["sh", "-c", serve], name=f"{project.stack}-by-hand", detach=True,
        ports={"8000/tcp": project.ports[0]}, restart_policy={"Name": "unless-stopped"})
    try:
        wrong = project.berth("import", "app.other.container[0]@local", hand.name, check=False)
        assert wrong.returncode == 1 and "app other is not in" in wrong.stderr
        project.berth("import", "app.files.container[0]@local", hand.name)
        again = project.berth("import", "app.files.container[0]@local", hand.name, check=False)
        assert again.returncode == 1 and "already in state" in again.stderr
        plan = project.berth("plan").stdout
        # The only real difference: berth's name for it. No replacement, nothing else.
        assert "Plan: 0 to add, 1 to change, 0 to destroy." in plan
        assert f'~ name              = "{hand.name}" -> "berth-{project.stack}-files-0"' in plan
        project.berth("apply", "--auto-approve")
        hand.reload()
        assert hand.name == f"berth-{project.stack}-files-0" and hand.status == "running"
        assert project.get(project.ports[0]) == (200, "hand\n")
        assert plan_exit(project) == 0
        project.write(project.file.read_text().replace("echo hand", "echo file"))
        assert "must be replaced" in project.berth("plan").stdout  # a real difference shows
    finally:
        try:
            docker_client.api.remove_container(hand.id, force=True)
        except Exception:
            pass


def test_history_records_each_config_and_rollback_brings_it_back(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    v1_serial = serial(project)
    project.write(STACK.replace("web-v1", "web-v2"))
    project.berth("apply", "--auto-approve")
    v2_serial = serial(project)
    assert "message: web-v2" in message(project, 0)

    history = json.loads(project.berth("state", "history", "--json").stdout)["versions"]
    assert [h["serial"] for h in history] == list(range(1, v2_serial + 1))
    assert all(h["config"] and h["who"] and h["time"] for h in history if h["note"] == "apply")
    assert len({h["config"] for h in history}) == 2
    text = project.berth("state", "history").stdout
    assert "SERIAL" in text and "~app.web.container[0]@local" in text

    out = project.berth("rollback", "--auto-approve").stdout
    assert f"Rolling back to the configuration applied at serial {v1_serial}" in out
    assert out.index('~ env') < out.index("Apply complete!")  # the diff is shown first
    assert '{"MESSAGE": "web-v2"} -> {"MESSAGE": "web-v1"}' in out
    assert "message: web-v1" in message(project, 0)
    assert "message: api-v1" in message(project, 1)

    out = project.berth("rollback", str(v2_serial), "--auto-approve").stdout
    assert "message: web-v2" in message(project, 0)
    cancelled = project.berth("rollback", str(v1_serial), input="no\n", check=False)
    assert cancelled.returncode == 1 and "Apply cancelled." in cancelled.stdout
    assert "message: web-v2" in message(project, 0)
    none = project.berth("rollback", "0", check=False)
    assert none.returncode == 1 and "no apply had recorded a configuration by serial 0" in none.stderr

    # One row per run: each apply's versions (a serial per step) are one run.
    runs = json.loads(project.berth("state", "history", "--json").stdout)["runs"]
    assert [r["note"] for r in runs] == ["apply", "apply", "rollback to serial %d" % v1_serial,
                                         "rollback to serial %d" % v2_serial]
    assert runs[0]["serials"] == [1, v1_serial] and runs[1]["serials"] == [v1_serial + 1, v2_serial]
    assert "app.web.container[0]@local" in runs[0]["added"] and runs[1]["changed"]
    out = project.berth("rollback", "--run", "1", "--auto-approve").stdout
    assert f"Rolling back to the configuration applied by run 1 (serial {v1_serial})" in out
    assert "message: web-v1" in message(project, 0)
    text = project.berth("state", "history").stdout
    assert "RUN" in text and f"rollback to run 1 (serial {v1_serial})" in text
    assert project.berth("rollback", "--run", "99", check=False).stderr.count("run 99 is not in the history") == 1


def test_status_and_logs(project, docker_client):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    rows = json.loads(project.berth("status", "--json").stdout)["replicas"]
    assert {(r["app"], r["state"], r["readiness"], r["liveness"], r["healthy"]) for r in rows} == {
        ("web", "running", "ready", "live", True), ("api", "running", "ready", "-", True)}
    table = project.berth("status").stdout
    assert "READINESS" in table and "2 of 2 healthy." in table

    docker_client.api.stop(ids(project)["app.api.container[0]@local"], timeout=0)
    down = project.berth("status", check=False)
    assert down.returncode == 1 and "exited" in down.stdout and "1 of 2 healthy." in down.stdout

    logs = project.berth("logs", "web").stdout
    assert "boot: test server starting" in logs and "boot: ready" in logs
    tail = project.berth("logs", "web", "--tail", "1").stdout
    assert len(tail.strip().splitlines()) == 1
    missing = project.berth("logs", "nope", check=False)
    assert missing.returncode == 1 and "app nope has no containers in state" in missing.stderr

    follow = subprocess.Popen(project.argv("logs", "web", "--follow", "--tail", "0"), cwd=project.path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follow.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not any("url:/followed" in line for line in seen) and time.monotonic() < deadline:
            project.get(project.ports[0], "/followed")  # until berth is following, requests go unseen
            time.sleep(0.3)
        assert any("url:/followed" in line for line in seen), seen
        assert follow.poll() is None  # still following
    finally:
        follow.kill()
        follow.wait()


def test_a_corrupt_store_is_reported_with_its_path_never_reset(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    db = project.path / ".berth" / "stacks" / project.stack / "cache.db"
    # The command closed every connection to the store as it exited, so SQLite merged its
    # write-ahead log into cache.db: a copy of that one file is the whole state, and the
    # damage below is not papered over by a log left beside it.
    assert sorted(p.name for p in db.parent.iterdir()) == ["cache.db"]
    with open(db, "r+b") as f:
        f.write(b"this is not a database" * 64)
    damaged = db.read_bytes()
    for args in (("plan",), ("state", "list"), ("state", "history"), ("apply", "--auto-approve"),
                 ("refresh",), ("status",), ("rollback", "--auto-approve")):
        result = project.berth(*args, check=False)
        assert result.returncode == 1, args
        assert f"state store {db.parent} is corrupt or unreadable" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, args
    assert db.read_bytes() == damaged  # left as it was, not silently reset


def test_force_unlock_refuses_a_wrong_lock_id(project):
    project.copy_context("httpd")
    project.write(STACK.replace('env = { MESSAGE = "web-v1" }', 'env = { MESSAGE = "web-v1", READY_DELAY = "30" }'))
    proc = subprocess.Popen(project.argv("apply", "--auto-approve"), cwd=project.path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        for line in proc.stdout:
            if "Waiting for readiness" in line:
                break
        held = project.berth("state", "rm", "app.web", check=False)
        assert held.returncode == 1 and "is locked by" in held.stderr
        lock_id = held.stderr.split("berth force-unlock ")[1].split("`")[0]
        wrong = project.berth("force-unlock", "not-the-id", check=False)
        assert wrong.returncode == 1 and f"the lock held is {lock_id}" in wrong.stderr
        live = project.berth("force-unlock", lock_id, check=False)  # issue 17: the holder still runs here
        assert live.returncode == 1 and "still running on this machine" in live.stderr
        assert "Removed the lock" in project.berth("force-unlock", lock_id, "--force").stdout
    finally:
        proc.kill()
        proc.wait()


def test_logs_of_several_apps_merged_with_grep_since_and_follow(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    project.get(project.ports[0], "/from-web")
    project.get(project.ports[1], "/from-api")

    everything = project.berth("logs").stdout.splitlines()
    assert any(line.startswith("[web/0@local] ") and "url:/from-web" in line for line in everything), everything
    assert any(line.startswith("[api/0@local] ") and "url:/from-api" in line for line in everything)
    assert project.berth("logs", "web", "api").stdout.splitlines() == everything, "no app named: all of them"
    boots = [i for i, line in enumerate(everything) if "boot: test server starting" in line]
    assert [everything[i].split("]")[0] for i in boots] == ["[web/0@local", "[api/0@local"], \
        "merged in time order: web started first (api depends on it)"

    grepped = project.berth("logs", "--grep", "url:/from-").stdout.splitlines()
    assert len(grepped) == 2 and all("url:/from-" in line for line in grepped), grepped
    stamped = project.berth("logs", "web", "--timestamps", "--grep", "from-web").stdout
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z .*url:/from-web", stamped), stamped
    time.sleep(1.5)
    assert project.berth("logs", "--since", "1s").stdout == "", "nothing was logged in the last second"
    bad = project.berth("logs", "--since", "ten", check=False)
    assert bad.returncode == 2 and "expected a duration like 10m" in bad.stderr

    follow = subprocess.Popen([*project.argv("logs", "web", "-f", "--tail", "0")], cwd=project.path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(follow.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 20
        while not any("url:/followed" in line for line in seen) and time.monotonic() < deadline:
            project.get(project.ports[0], "/followed")
            time.sleep(0.3)
        assert any("url:/followed" in line for line in seen), seen
        assert follow.poll() is None
    finally:
        follow.kill()
        follow.wait()
    global_file = subprocess.run([str(project.argv("plan")[0]), "-f", str(project.path), "logs", "api", "--tail", "1"],
                                 capture_output=True, text=True, cwd="/")
    assert global_file.returncode == 0 and len(global_file.stdout.splitlines()) == 1, global_file.stderr


def test_show_prints_a_saved_plan_as_plan_did_and_the_state_with_secrets_masked(project):
    project.copy_context("httpd")
    secret = f"show-secret-{os.getpid()}-{time.time_ns()}"
    project.write(STACK.replace('env = { MESSAGE = "api-v1" }', 'env = { MESSAGE = "api-v1" }\nsecret_env = { TOKEN = "tok" }')
                  + '\n[secrets.tok]\nenv = "BERTH_TEST_SHOW_SECRET"\n')
    env = {"BERTH_TEST_SHOW_SECRET": secret}
    project.berth("apply", "--auto-approve", env=env)
    shown = project.berth("show", env=env).stdout
    assert 'container "app.web.container[0]@local" {' in shown and secret not in shown
    doc = json.loads(project.berth("show", "--json", env=env).stdout)
    assert doc["format_version"] == 1 and doc["stack"] == project.stack and secret not in json.dumps(doc)
    api = next(r for r in doc["resources"] if r["address"] == "app.api.container[0]@local")
    assert api["attributes"]["secret_versions"] == "(sensitive value)"

    project.write(project.file.read_text().replace("web-v1", "web-v2"))
    planned = project.berth("plan", "--out", "next.plan", env=env).stdout
    again = project.berth("show", "next.plan").stdout
    assert planned.split("\nSaved the plan to:")[0].rstrip() == again.rstrip()
    assert json.loads(project.berth("show", "next.plan", "--json").stdout) == \
        json.loads(project.berth("plan", "--json", env=env).stdout)


def test_every_json_document_is_an_object_with_a_format_version_and_zoned_times(project):
    project.copy_context("httpd")
    project.write(STACK)
    project.berth("apply", "--auto-approve")
    project.berth("plan", "--out", "saved.plan")
    from berth.ui.documents import DOCUMENTS

    documents = {  # what each prints, and the model (schemas/NAME.schema.json) it must fit
        "plan": (("plan", "--json"), "plan"), "status": (("status", "--json"), "status"),
        "show": (("show", "--json"), "state"), "show plan": (("show", "saved.plan", "--json"), "plan"),
        "output": (("output", "--json"), "output"), "history": (("state", "history", "--json"), "history"),
        "validate": (("validate", "--json"), "validate"), "hosts": (("hosts", "--json"), "hosts"),
    }
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

    def times(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from times(v, k)
        elif isinstance(value, list):
            for v in value:
                yield from times(v, key)
        elif key in ("time", "since", "started_at") and value is not None:
            yield value

    for name, (args, model) in documents.items():
        doc = json.loads(project.berth(*args).stdout)
        assert isinstance(doc, dict) and isinstance(doc.get("format_version"), int), name
        DOCUMENTS[model].model_validate(doc)
        assert all(stamp.match(t) for t in times(doc)), (name, list(times(doc)))
    status = json.loads(project.berth("status", "--json").stdout)
    assert status["healthy"] is True and all(isinstance(r["healthy"], bool) for r in status["replicas"])
    assert all(stamp.match(r["since"]) for r in status["replicas"])
    assert list(times(json.loads(project.berth("state", "history", "--json").stdout)))


def test_apply_json_streams_one_event_per_line(project):
    project.copy_context("httpd")
    project.write(STACK)
    refused = project.berth("apply", "--json", check=False)
    assert refused.returncode == 1 and "--json cannot ask for 'yes'" in refused.stderr and refused.stdout == ""
    out = project.berth("apply", "--json", "--auto-approve").stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert all(e["format_version"] == 1 and e["time"].endswith("Z") for e in events)
    from berth.ui.documents import ApplyEvent

    for event in events:
        ApplyEvent.model_validate(event)
    assert events[0]["event"] == "plan" and events[0]["plan"]["summary"]["add"] == 4
    assert events[-1]["event"] == "summary" and events[-1]["ok"] is True and events[-1]["added"] == 4
    steps = [(e["event"], e["step"], e["address"]) for e in events if e["event"] in ("started", "finished")]
    web = "app.web.container[0]@local"
    assert steps.index(("started", "create", web)) < steps.index(("finished", "create", web)) \
        < steps.index(("started", "wait", web)) < steps.index(("finished", "wait", web))
    finished = [e for e in events if e["event"] == "finished"]
    assert all(isinstance(e["elapsed"], float) for e in finished)
    again = [json.loads(line) for line in project.berth("apply", "--json", "--auto-approve").stdout.splitlines()]
    assert [e["event"] for e in again] == ["plan", "summary"] and again[0]["plan"]["changes"] == []
