"""Where apps answer, from state alone (planner.endpoints), on plain data."""

from __future__ import annotations

from planner.desired import AppConfig, HostConfig, Stack
from planner.endpoints import endpoints
from state.address import Address
from state.model import ResourceState, State


def container(app: str, index: int, host: str, **attrs) -> ResourceState:
    address = Address.container(app, index, host)
    return ResourceState(address=address, type="container", host=host, id=f"{app}{index}",
                         attributes={"port": 8080, "host_port": None} | attrs)


def stack(**apps: AppConfig) -> Stack:
    return Stack(name="s", file="/x/berth.toml", apps=apps,
                 hosts={"gpu": HostConfig(name="gpu", user="u", address="10.0.0.5")}, gateway_port=8000)


def state(*resources: ResourceState) -> State:
    return State(stack="s", resources={str(r.address): r for r in resources})


def test_replicas_answer_on_the_port_they_were_given_on_their_hosts_address():
    found = endpoints(stack(llm=AppConfig(name="llm", port=8080, host_port=None, host="gpu")), state(
        container("llm", 1, "gpu", published_port=32769), container("llm", 0, "gpu", published_port=32768)))
    (llm,) = found
    assert [(r.address, r.url) for r in llm.replicas] == [
        ("app.llm.container[0]@gpu", "http://10.0.0.5:32768"), ("app.llm.container[1]@gpu", "http://10.0.0.5:32769")]
    assert llm.hosts == ["gpu"] and llm.gateway == [] and llm.predict == []


def test_the_gateway_lists_an_app_it_routes_and_its_predict_url():
    gateway = ResourceState(address=Address.parse("gateway@local"), type="gateway", host="local", id="g",
                            attributes={"port": 8000, "routes": {"llm": {"predict": "/v1/chat/completions"},
                                                                 "web": {"predict": None}}})
    found = endpoints(stack(llm=AppConfig(name="llm", port=8080, host_port=None),
                            web=AppConfig(name="web", port=80, host_port=18090)),
                      state(gateway, container("llm", 0, "local", published_port=40000),
                            container("web", 0, "local", host_port=18090)))
    by_app = {a.app: a for a in found}
    assert by_app["llm"].predict == ["http://localhost:8000/llm/predict"]
    assert by_app["llm"].gateway == ["http://localhost:8000/llm/"]
    assert by_app["web"].predict == [] and by_app["web"].gateway == ["http://localhost:8000/web/"]
    assert by_app["web"].replicas[0].url == "http://localhost:18090"


def test_an_app_not_applied_yet_is_listed_with_nothing_and_state_only_apps_follow():
    found = endpoints(stack(new=AppConfig(name="new", port=9000, host_port=19000)),
                      state(container("old", 0, "local", host_port=18000)))
    assert [(a.app, a.port, len(a.replicas)) for a in found] == [("new", 9000, 0), ("old", 8080, 1)]
