"""The Docker files, read without Docker: the build arguments keep the CUDA image as the users'
default, the image keeps its HEALTHCHECK, non-root user and /cache volume, secrets stay out of
the build context and of git, and the CI script builds the flavour the Dockerfile documents.
(Compose's and the Dockerfile's commands are parsed with run.py's options in test_gui_run.py;
scripts/docker_ci.sh builds and runs the image for real.)"""
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction: comments dropped, continuations joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return dict((a.split("=", 1) + [""])[:2] for kind, a in _instructions() if kind == "ARG")


def _ignore_lines(name: str) -> set[str]:
    return {x.strip() for x in (ROOT / name).read_text().splitlines() if x.strip() and not x.startswith("#")}


def test_base_and_torch_args_default_to_the_cuda_image():
    args = _args()
    assert args["BASE"] == "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
    assert args["TORCH"] == "cuda"
    assert args.get("TORCH_FIND_LINKS", None) == ""  # nothing but PyPI unless a build says otherwise
    ins = _instructions()
    froms = [a for k, a in ins if k == "FROM"]
    assert froms == ["${BASE}"]
    # BASE is declared before FROM (the only place FROM can read it)
    assert ins.index(("ARG", "BASE=" + args["BASE"])) < ins.index(("FROM", "${BASE}"))
    assert (ROOT / "requirements" / f"torch-{args['TORCH']}.txt").exists()
    assert (ROOT / "requirements" / "torch-cpu.txt").exists()


def test_healthcheck_user_volume_and_command():
    ins = _instructions()
    health = [a for k, a in ins if k == "HEALTHCHECK"]
    assert len(health) == 1 and "/api/v1/health" in health[0]
    start = re.search(r"--start-period=(\d+)s", health[0])
    assert start and int(start.group(1)) >= 120  # a first start converts the offline model's GGUF
    users = [a for k, a in ins if k == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith(("root:", "0:"))
    assert any(k == "VOLUME" and "/cache" in json.loads(a) for k, a in ins)
    # the port the health check asks defaults to the one CMD serves on
    env = " ".join(a for k, a in ins if k == "ENV")
    cmd = json.loads(next(a for k, a in ins if k == "CMD"))
    assert "HETA_PORT=8080" in env and cmd[cmd.index("--port") + 1] == "8080" and "${HETA_PORT}" in health[0]


@pytest.mark.parametrize("name", [".dockerignore", ".gitignore"])
def test_env_files_are_ignored(name):
    assert _ignore_lines(name) & {".env", "/.env", ".env*", "**/.env"}


def test_build_context_leaves_out_environments_and_wheels():
    lines = _ignore_lines(".dockerignore")
    assert {".venv", ".git", "*.whl"} <= lines


def test_ci_script_builds_the_cpu_flavour_on_the_local_base():
    script = (ROOT / "scripts" / "docker_ci.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert "BASE_IMAGE=${HETA_CI_BASE_IMAGE:-heta-debian-base}" in script
    build = script[script.index('"$DOCKER" build'):]
    build = build[:build.index(". >")]
    words = shlex.split(build.replace("\\\n", " "))
    assert "--network" in words and words[words.index("--network") + 1] == "host"
    build_args = [words[i + 1] for i, w in enumerate(words) if w == "--build-arg"]
    assert {a.split("=")[0] for a in build_args} == {"BASE", "TORCH", "TORCH_FIND_LINKS"}
    assert "TORCH=cpu" in build_args
    assert {a.split("=")[0] for a in build_args} <= set(_args())  # every build arg is one the Dockerfile reads
    assert "trap cleanup EXIT" in script
    ci = (ROOT / ".ci" / "run").read_text()
    # the image check runs first, the suite last: its summary line is what CI reads
    assert "scripts/docker_ci.sh" in ci and ci.rstrip().endswith("make test")
    assert ci.index("bash scripts/docker_ci.sh") < ci.rindex("make test")
