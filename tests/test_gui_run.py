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
