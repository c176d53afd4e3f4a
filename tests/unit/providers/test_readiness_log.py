"""The log tail shown when readiness fails: the server's own words, not berth's probes."""

from providers.readiness import tcp_verdict, useful_tail

UVICORN = """INFO:     Started server process [1]
INFO:     Waiting for application startup.
loading shard 1/3
ERROR:    CUDA out of memory while loading shard 2/3
""" + "".join(f'INFO:     172.17.0.1:{33000 + i} - "GET /ready HTTP/1.1" 503 Service Unavailable\n' for i in range(100))

BUSYBOX = "boot: loading weights\nboot: NEVER_READY=1\n" + "".join(
    f"[::ffff:172.17.0.1]:{40000 + i}: url:/ready\n[::ffff:172.17.0.1]:{40000 + i}: response:404\n" for i in range(50))


def test_probe_access_lines_are_dropped():
    tail = useful_tail(UVICORN, "/ready")
    assert "GET /ready" not in tail
    assert tail.splitlines()[-1] == "ERROR:    CUDA out of memory while loading shard 2/3"


def test_lines_differing_only_in_numbers_are_folded_with_a_count():
    tail = useful_tail(BUSYBOX, "/ready").splitlines()
    assert tail[:2] == ["boot: loading weights", "boot: NEVER_READY=1"]
    assert tail[2].endswith("response:404   (and 49 more like it)")
    assert len(tail) == 3


def test_a_root_path_filters_nothing_and_keep_bounds_the_tail():
    log = "\n".join(f"line {chr(97 + i % 26)}" for i in range(100))
    assert useful_tail(log, "/") == "\n".join(log.splitlines()[-30:])
    assert len(useful_tail(log, None, keep=5).splitlines()) == 5


def _recv(result):
    def recv(size):
        if isinstance(result, BaseException):
            raise result
        return result
    return recv


def test_a_tcp_connection_closed_at_once_is_not_a_server():
    # Docker's port proxy: accepts, finds nothing behind it, closes.
    assert tcp_verdict(_recv(b"")) == (False, "TCP connect: closed at once (nothing listens in the container)")
    assert tcp_verdict(_recv(ConnectionResetError(104, "Connection reset by peer"))) == (
        False, "TCP connect: Connection reset by peer")


def test_a_tcp_connection_held_open_or_greeting_is_a_server():
    assert tcp_verdict(_recv(TimeoutError())) == (True, "TCP connect succeeded")
    assert tcp_verdict(_recv(b"S")) == (True, "TCP connect succeeded")  # a server that speaks first
