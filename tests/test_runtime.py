"""Process start-up: the protobuf backend check, the event loop choice, the workers setting and port reservation."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import pytest

from server.__main__ import build_parser, load_settings
from server.config import Settings, SettingsError
from server.runtime import RuntimeSetupError, check_protobuf_backend, event_loop_factory, protobuf_backend
from server.supervisor import Supervisor, SupervisorError, describe_exit, reserve_port

# --------------------------------------------------------------------------- protobuf backend


def test_the_test_environment_runs_on_upb() -> None:
    assert protobuf_backend() == "upb"
    check_protobuf_backend(Settings())


@pytest.mark.parametrize("backend", ["python", "cpp"])
def test_a_slow_protobuf_backend_is_refused(backend: str) -> None:
    with pytest.raises(RuntimeSetupError, match=rf"'{backend}' backend, not 'upb'.*OJS_ALLOW_SLOW_PROTOBUF=1"):
        check_protobuf_backend(Settings(), backend)


def test_a_slow_protobuf_backend_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server.runtime"):
        check_protobuf_backend(Settings(allow_slow_protobuf=True), "python")
    assert "'python' backend, not 'upb'" in caplog.text
    assert "OJS_ALLOW_SLOW_PROTOBUF is set" in caplog.text


def test_allow_slow_protobuf_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).allow_slow_protobuf is False
    assert Settings.from_env({"OJS_ALLOW_SLOW_PROTOBUF": "1"}).allow_slow_protobuf is True
    with pytest.raises(SettingsError, match="OJS_ALLOW_SLOW_PROTOBUF"):
        Settings.from_env({"OJS_ALLOW_SLOW_PROTOBUF": "maybe"})


# --------------------------------------------------------------------------- event loop


def _loop_type(factory: object) -> str:
    loop = factory() if callable(factory) else asyncio.new_event_loop()
    try:
        return f"{type(loop).__module__}.{type(loop).__name__}"
    finally:
        loop.close()


def test_event_loop_auto_uses_uvloop_when_installed() -> None:
    factory, name = event_loop_factory("auto")
    assert factory is not None
    assert _loop_type(factory).startswith("uvloop")
    assert name.startswith("uvloop ")


def test_event_loop_asyncio_is_the_standard_loop() -> None:
    factory, name = event_loop_factory("asyncio")
    assert factory is None
    assert name.startswith("asyncio")


def test_event_loop_uvloop_is_required_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    factory, _ = event_loop_factory("uvloop")
    assert factory is not None
    # None in sys.modules makes the import fail.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(RuntimeSetupError, match="OJS_EVENT_LOOP=uvloop but uvloop cannot be imported"):
        event_loop_factory("uvloop")
    factory, name = event_loop_factory("auto")
    assert factory is None
    assert name == "asyncio (uvloop is not installed)"


def test_event_loop_setting() -> None:
    assert Settings.from_env({}).event_loop == "auto"
    assert Settings.from_env({"OJS_EVENT_LOOP": " UVLoop "}).event_loop == "uvloop"
    assert Settings.from_env({"OJS_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(SettingsError, match="OJS_EVENT_LOOP must be one of auto, asyncio, uvloop"):
        Settings.from_env({"OJS_EVENT_LOOP": "trio"})


# --------------------------------------------------------------------------- workers


def test_workers_setting_and_flag() -> None:
    parser = build_parser()
    assert load_settings(parser.parse_args([]), {}).workers == 1
    assert load_settings(parser.parse_args([]), {"OJS_WORKERS": "4"}).workers == 4
    assert load_settings(parser.parse_args(["--workers", "3"]), {"OJS_WORKERS": "4"}).workers == 3
    # A process started by the supervisor is always a single server.
    assert load_settings(parser.parse_args(["--worker-index", "2"]), {"OJS_WORKERS": "4"}).workers == 1
    for bad in ("0", "-1", "x", "257"):
        with pytest.raises(SettingsError, match="OJS_WORKERS"):
            Settings.from_env({"OJS_WORKERS": bad})


def test_workers_flag_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--workers", "0"])
    assert "workers must be in 1..256" in capsys.readouterr().err


def test_worker_index_is_not_in_the_help() -> None:
    assert "--worker-index" not in build_parser().format_help()


def test_describe_exit() -> None:
    assert describe_exit(0) == "code 0"
    assert describe_exit(3) == "code 3"
    assert describe_exit(-9) == "signal SIGKILL"


# --------------------------------------------------------------------------- port reservation


def _listener(port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_reserve_port_zero_picks_a_free_port_and_holds_it_for_reuse_port_listeners() -> None:
    port, holders = reserve_port("127.0.0.1", 0, "HTTP")
    try:
        assert port > 0
        assert [h.getsockname()[1] for h in holders] == [port]
        # Workers bind beside the holder with SO_REUSEPORT...
        with _listener(port, reuse_port=True), _listener(port, reuse_port=True):
            pass
        # ...while a program without SO_REUSEPORT cannot take the port.
        with pytest.raises(OSError):
            _listener(port, reuse_port=False)
    finally:
        for holder in holders:
            holder.close()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_reserve_port_refuses_a_port_someone_listens_on(reuse_port: bool) -> None:
    # Even a listener that itself uses SO_REUSEPORT (gRPC servers do by default) is not joined silently.
    with _listener(0, reuse_port=reuse_port) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(SupervisorError, match=rf"cannot listen for gRPC on 127.0.0.1:{port}: address in use"):
            reserve_port("127.0.0.1", port, "gRPC")


def test_reserve_port_reports_an_unknown_host() -> None:
    with pytest.raises(SupervisorError, match="cannot resolve OJS_HOST"):
        reserve_port("no-such-host.invalid", 0, "HTTP")


# --------------------------------------------------------------------------- supervisor


def _supervisor(code: str) -> Supervisor:
    """A supervisor of two stand-in workers running `code` (the `--worker-index I` they get is ignored)."""
    settings = Settings(workers=2, http_port=0, grpc_port=0, redis_url="redis://127.0.0.1:1/0")
    return Supervisor(settings, command=[sys.executable, "-c", code])


async def test_supervisor_gives_up_on_workers_that_keep_exiting(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = _supervisor("import sys; sys.exit(3)")
    with caplog.at_level(logging.INFO, logger="server.supervisor"):
        code = await asyncio.wait_for(supervisor.run(asyncio.Event()), 30)
    assert code == 1
    assert "exited unexpectedly with code 3; restarting it in 0.5s" in caplog.text
    assert "giving up" in caplog.text
    assert supervisor.worker_pids == []


async def test_supervisor_stops_its_workers_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = _supervisor("import time; time.sleep(60)")
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="server.supervisor"):
        running = asyncio.create_task(supervisor.run(stop))
        for _ in range(100):
            if len(supervisor.worker_pids) == 2:
                break
            await asyncio.sleep(0.05)
        pids = supervisor.worker_pids
        assert len(pids) == 2
        stop.set()
        assert await asyncio.wait_for(running, 30) == 0
    assert supervisor.worker_pids == []
    assert caplog.text.count("stopped with signal SIGTERM") == 2
    assert "exited unexpectedly" not in caplog.text
