"""requirements/ci.lock, the hash-checked lock CI installs from (`make install-locked`), covers what pyproject.toml
declares: every dependency of every extra pinned to one version that satisfies it, each with sha256 hashes, and
the torch builds the Makefile pins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "ci.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [sha256 hashes])} of the lock file, read as pip reads it (continued lines)."""
    text = LOCK.read_text().replace("\\\n", " ")
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match is not None, f"ci.lock: not a pinned requirement: {line[:120]}"
        name = canonicalize_name(match.group(1))
        assert name not in out, f"ci.lock pins {name} twice"
        out[name] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})\b", line))
    return out


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml: dependencies and each extra's (picsift's own extras left out)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def test_every_declared_dependency_is_locked_at_a_version_it_accepts() -> None:
    lock = locked()
    reqs = declared()
    assert len(reqs) > 30 and len(lock) >= len(reqs)
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue  # not installed on Python 3.11 / Linux
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} (pyproject.toml) is missing from ci.lock: run `make lock`"
        version = lock[name][0]
        assert req.specifier.contains(Version(version), prereleases=True), (
            f"ci.lock pins {name}=={version}, which pyproject.toml's {req} refuses: run `make lock`"
        )


def test_every_locked_package_has_sha256_hashes_and_nothing_is_unpinned() -> None:
    lock = locked()
    for name, (version, hashes) in lock.items():
        assert hashes, f"ci.lock: {name}=={version} has no --hash (pip --require-hashes refuses it)"
        assert len(set(hashes)) == len(hashes), name
    assert "picsift" not in lock  # the project itself is installed from the tree (`--no-deps -e .`)
    assert not re.search(r"^\s*(-e|--editable|\S+ @ )", LOCK.read_text(), re.M)  # no URL or editable entry


def test_the_lock_pins_the_torch_builds_of_the_makefile_and_its_input() -> None:
    makefile = (REPO / "Makefile").read_text()
    pins = re.search(r"^TORCH_PINS \?= (.+)$", makefile, re.M)
    assert pins is not None
    wanted = dict(p.split("==") for p in pins.group(1).split())
    lock = locked()
    assert {name: lock[name][0] for name in wanted} == wanted
    ci_in = [ln for ln in (REPO / "requirements" / "ci.in").read_text().splitlines() if ln and not ln.startswith("#")]
    assert dict(p.split("==") for p in ci_in) == wanted


def test_ci_installs_from_the_lock() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "LOCKED=1" in ci
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile and "--no-deps --no-build-isolation -e ." in makefile
