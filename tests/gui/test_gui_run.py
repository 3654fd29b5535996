"""run.py's options and its browser rule (no model), and serving on an inherited socket (--fd)."""
import run


def test_defaults():
    a = run.parse_args([])
    assert (a.host, a.port, a.model, a.quality, a.no_browser) == ("127.0.0.1", 8080, "auto", "fast", False)
    a = run.parse_args(["--host", "0.0.0.0", "--port", "9000", "--model", "smollm2-135m", "--quality", "balanced",
                        "--no-browser"])
    assert (a.host, a.port, a.model, a.quality, a.no_browser) == ("0.0.0.0", 9000, "smollm2-135m", "balanced", True)
    assert a.fd is None and run.parse_args(["--fd", "3"]).fd == 3


def test_browser_opens_only_with_a_display_and_without_no_browser():
    a = run.parse_args([])
    assert not run.open_browser(a, environ={}, platform="linux")
    assert run.open_browser(a, environ={"DISPLAY": ":0"}, platform="linux")
    assert run.open_browser(a, environ={"WAYLAND_DISPLAY": "wayland-0"}, platform="linux")
    assert run.open_browser(a, environ={}, platform="darwin")
    assert not run.open_browser(run.parse_args(["--no-browser"]), environ={"DISPLAY": ":0"}, platform="linux")


def test_deployment_commands_are_valid_run_py_arguments():
    """The compose file's and the Dockerfile's commands parse with run.py's options (defaults of
    ${VAR:-default} substituted as compose does), so a renamed flag can't break deployment unseen."""
    import json
    import re
    from pathlib import Path

    import yaml

    root = Path(run.__file__).parent
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    cmd = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in compose["services"]["app"]["command"]]
    a = run.parse_args(cmd[cmd.index("/app/src/run.py") + 1:])
    assert (a.host, a.quant, a.max_models) == ("0.0.0.0", "none", 2)
    docker_cmd = next(line for line in (root / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    args = json.loads(docker_cmd[3:])
    assert run.parse_args(args[args.index("/app/src/run.py") + 1:]).host == "0.0.0.0"
    assert run.parse_args(["--quant", "4bit", "--max-models", "3"]).quant == "4bit"


def test_fd_serves_on_the_inherited_socket_and_binds_nothing_else(tmp_path):
    """What LiveServer relies on: run.py --fd serves the listening socket it inherits (the port is
    never released, so nobody can take it between choice and use) and binds no other port (not
    --port's default 8080). No model: a missing folder, so /health answers 503 quickly."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    import psutil

    from tests.conftest import listening_socket

    sock = listening_socket()
    port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}  # else NiceGUI won't serve
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "run.py", "--no-browser", "--fd", str(sock.fileno()), "--model",
                                 str(tmp_path / "no-such-model-folder"), "--cache-dir", "off"],
                                pass_fds=[sock.fileno()], cwd=Path(run.__file__).parent, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    sock.close()
    try:
        # the request waits in the socket's backlog until the server runs
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=180,
                      headers={"x-forwarded-for": "203.0.113.7"})
        assert r.status_code == 503 and r.json()["status"] in ("loading", "error"), r.text
        listening = {c.laddr.port for c in psutil.Process(proc.pid).net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {port}
    finally:
        proc.terminate()
        proc.wait(30)
    # the peer on the inherited socket is the real loopback address, so the trust rule applies
    assert '"client": "203.0.113.7"' in (tmp_path / "server.log").read_text()


def test_run_flags_are_generated_from_the_server_settings_declaration():
    """Issue #15: run.py's options come from one declaration (gui/server_settings.py)."""
    import dataclasses

    import pytest

    from gui.server_settings import ServerSettings

    args = vars(run.parse_args([]))
    assert set(args) == {f.name for f in dataclasses.fields(ServerSettings)}
    assert all(args[f.name] == f.default for f in dataclasses.fields(ServerSettings))
    for bad in (["--max-models", "0"], ["--port", "70000"], ["--quality", "turbo"], ["--time-limit", "0"]):
        with pytest.raises(SystemExit) as err:
            run.parse_args(bad)
        assert err.value.code == 2
