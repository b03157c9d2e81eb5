"""The design card's contract, checked: imports point one way, only flows imports Prefect, imports are inert."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "ray_render", "delivery", "flows", "api", "cli")
MAY_IMPORT = {
    "models": set(),
    "ray_render": {"models"},
    "delivery": {"models"},
    "flows": {"models", "ray_render", "delivery"},
    "api": {"models", "delivery", "flows"},
    "cli": {"models", "ray_render", "delivery", "flows", "api"},
}


def imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_the_way_the_design_says(package):
    for path in (ROOT / package).rglob("*.py"):
        ours = imported_top_levels(path) & set(PACKAGES) - {package}
        assert ours <= MAY_IMPORT[package], f"{path.relative_to(ROOT)} imports {sorted(ours - MAY_IMPORT[package])}"


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "flows"])
def test_only_flows_imports_prefect(package):
    for path in (ROOT / package).rglob("*.py"):
        assert "prefect" not in imported_top_levels(path), f"{path.relative_to(ROOT)} imports prefect"


def test_importing_every_module_creates_nothing_and_starts_nothing(tmp_path):
    home = tmp_path / "never-created"
    # Migration scripts are not modules to import: Alembic runs them, inside a migration context.
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
               if "migrations" not in p.parts]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "import ray; assert not ray.is_initialized(), 'ray started at import'\n"
        "from models.settings import get_settings; from models.db import get_engine\n"
        "assert get_settings.cache_info().currsize == 0, 'settings read at import'\n"
        "assert get_engine.cache_info().currsize == 0, 'engine built at import'\n"
    )
    env = {**os.environ, "GEOSHIP_HOME": str(home)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)
    assert not home.exists()


def test_the_plain_services_of_flows_never_import_prefect():
    for path in (ROOT / "flows" / "services").rglob("*.py"):
        assert "prefect" not in imported_top_levels(path), f"{path.relative_to(ROOT)} imports prefect"
        ours = {n for n in _imported_modules(path) if n.startswith("flows.") and not n.startswith("flows.services")}
        assert not ours, f"{path.relative_to(ROOT)} imports {sorted(ours)}: the services never reach into the flows"


def test_the_api_imports_no_orchestration_to_read_a_row():
    # Module level: only flows.services; starting or cancelling a run imports flows.starting where it happens.
    for path in (ROOT / "api").rglob("*.py"):
        top_level = {n for n in _imported_modules(path, top_level_only=True) if n.startswith("flows")}
        assert all(n.startswith("flows.services") for n in top_level), f"{path.relative_to(ROOT)}: {sorted(top_level)}"
    code = "import sys, api.app; assert 'prefect' not in sys.modules, 'the API imported Prefect'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def _imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names
