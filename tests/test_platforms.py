"""Every runtime dependency has a wheel for Windows x86_64, macOS arm64 and Linux aarch64 under Python 3.12.

Runs ``pip download --only-binary=:all: --no-deps`` of all requirements in
``pyproject.toml`` whose markers hold on that platform, with the platform's
usual tags, and fails when pip finds no wheel (then asks again one requirement
at a time to name each one that has none).  Skips only when PyPI cannot be
reached (an offline machine).  CI runs it with the rest of the suite.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLATFORMS = {
    "windows-x86_64": {"tags": ["win_amd64"],
                       "env": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                               "platform_machine": "AMD64"}},
    # pip expands a macOS tag to every older macOS version and to universal2
    "macos-arm64": {"tags": ["macosx_14_0_arm64"],
                    "env": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                            "platform_machine": "arm64"}},
    "linux-aarch64": {"tags": ["manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64"],
                      "env": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                              "platform_machine": "aarch64"}},
}
PYTHON = "3.12"


def runtime_requirements(env: dict) -> list[str]:
    """The ``[project] dependencies`` whose markers hold in ``env``, markers stripped."""
    from packaging.requirements import Requirement

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    full = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "platform_release": "", "platform_version": "",
            "implementation_version": f"{PYTHON}.0", **env}
    out = []
    for d in deps:
        r = Requirement(d)
        if r.marker is None or r.marker.evaluate(full):
            r.marker = None
            out.append(str(r))
    return out


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def test_markers_are_evaluated():
    reqs = runtime_requirements(PLATFORMS["linux-aarch64"]["env"])
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in reqs}
    assert {"onnxruntime", "numpy", "opencv-python-headless"} <= names
    assert not names & {"yuface", "mtcnn", "tensorflow", "ai-edge-litert"}  # one portable runtime


@pytest.mark.network
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_every_runtime_dependency_has_a_wheel(platform, tmp_path):
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable from here")
    spec = PLATFORMS[platform]
    reqs = runtime_requirements(spec["env"])
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--quiet",
           "--python-version", PYTHON, "--implementation", "cp",
           "--abi", "cp" + PYTHON.replace(".", ""), "--abi", "abi3", "--abi", "none",
           "--dest", str(tmp_path)]
    for tag in spec["tags"]:
        cmd += ["--platform", tag]
    p = subprocess.run(cmd + reqs, capture_output=True, text=True, timeout=600)  # one call when all is well
    if p.returncode != 0:
        missing = []
        for req in reqs:  # then one call each, so that the message names every dependency without a wheel
            one = subprocess.run(cmd + [req], capture_output=True, text=True, timeout=600)
            if one.returncode != 0:
                why = one.stderr.strip().splitlines()[-1] if one.stderr.strip() else one.returncode
                missing.append(f"{req}: {why}")
        assert missing, f"pip failed on the whole list but on no single requirement: {p.stderr.strip()[-300:]}"
        pytest.fail(f"no {platform} wheel for Python {PYTHON}: " + "; ".join(missing))
    assert len(list(tmp_path.glob("*.whl"))) == len(reqs)
