"""The package's shape, checked: import-linter contracts (floors, no upward imports, no cycles between floors),
every module on a floor, and a power check that the floors contract does read the imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
FLOORS = next(c for c in CONFIG["contracts"] if c["type"] == "layers")


def lint(tmp_path: Path, contracts: list[dict]) -> int:
    """Runs import-linter on madloop with the given contracts in a subprocess (it reconfigures logging, which
    would silence madloop's logger for the rest of a test worker); returns its exit code (0: all kept)."""
    lines = ["[importlinter]", "root_package = madloop", "exclude_type_checking_imports = True", ""]
    for i, contract in enumerate(contracts):
        lines.append(f"[importlinter:contract:{i}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines.append(f"{key} =\n" + "\n".join(f"    {v}" for v in value))
            else:
                lines.append(f"{key} = {value}")
        lines.append("")
    path = tmp_path / "importlinter.ini"
    path.write_text("\n".join(lines))
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(path)!r}, no_cache=True))"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=300).returncode


def test_import_contracts_are_kept(tmp_path):
    assert lint(tmp_path, CONFIG["contracts"]) == 0


def test_every_module_is_on_a_floor():
    on_floor = {m.strip() for layer in FLOORS["layers"] for m in layer.split("|")}
    modules = {
        ".".join(("madloop", *p.relative_to(ROOT / "madloop").with_suffix("").parts))
        for p in (ROOT / "madloop").rglob("*.py")
        if p.name != "__init__.py"
    }
    # a subpackage's modules are on their package's floor
    missing = {m for m in modules if not any(m == f or m.startswith(f + ".") for f in on_floor)}
    assert missing == set(), f"modules on no floor of [tool.importlinter]: {sorted(missing)}"


@pytest.mark.parametrize(
    "swap", [("madloop.loop", "madloop.engine | madloop.plugins"), ("madloop.classifier", "madloop.models")]
)
def test_floors_contract_sees_an_upward_import(tmp_path, swap):
    # Power check: with two floors swapped, the imports between them go upward and the contract breaks.
    layers = list(FLOORS["layers"])
    i, j = layers.index(swap[0]), layers.index(swap[1])
    layers[i], layers[j] = layers[j], layers[i]
    assert lint(tmp_path, [{**FLOORS, "layers": layers}]) == 1
