"""run.py's options and its browser rule (no model, no server)."""
import run


def test_defaults():
    a = run.parse_args([])
    assert (a.host, a.port, a.model, a.quality, a.no_browser) == ("127.0.0.1", 8080, "auto", "fast", False)
    a = run.parse_args(["--host", "0.0.0.0", "--port", "9000", "--model", "smollm2-135m", "--quality", "balanced",
                        "--no-browser"])
    assert (a.host, a.port, a.model, a.quality, a.no_browser) == ("0.0.0.0", 9000, "smollm2-135m", "balanced", True)


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
