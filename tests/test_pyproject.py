"""pyproject.toml, requirements.txt and requirements.lock say the same thing: one version of chip,
one list of runtime requirements, and a lock that pins, with hashes, releases those requirements admit."""

import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from services.config import VERSION

ROOT = pathlib.Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements(lines) -> dict[str, Requirement]:
    """Requirements by canonical name."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def locked() -> dict[str, tuple[str, str | None, int]]:
    """requirements.lock's pins: name -> (version, environment marker or None, number of hashes)."""
    pins, name = {}, None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            pins[name] = (match[2], match[3], 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, marker, hashes = pins[name]
            pins[name] = (version, marker, hashes + 1)
    return pins


def test_pyproject_names_the_version_chip_prints():
    assert project()["version"] == VERSION, "bump services/config.py VERSION and pyproject.toml's version together"


def test_requirements_txt_is_pyprojects_dependencies():
    declared = requirements(project()["dependencies"])
    listed = requirements((ROOT / "requirements.txt").read_text().splitlines())
    assert {name: str(r) for name, r in listed.items()} == {name: str(r) for name, r in declared.items()}
    for requirement in declared.values():
        assert all(spec.operator == "~=" for spec in requirement.specifier), f"{requirement} is not a ~= pin"


def test_the_lock_pins_with_hashes_a_release_each_requirement_admits():
    pins = locked()
    for name, requirement in requirements(project()["dependencies"]).items():
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        version, _, hashes = pins[name]
        assert requirement.specifier.contains(version), f"requirements.lock has {name}=={version}: run make lock"
    assert all(hashes for _, _, hashes in pins.values()), "every pin needs its hashes (--generate-hashes)"
