"""The package's map: README's Architecture section names every module, the import
contracts cover every package, Hydra is used through its public API, and no module
imports another's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("regexp", "hydra_plugins")


def modules() -> list[Path]:
    """Every Python module of the package and its Hydra plugin, ``__init__`` aside."""
    return sorted(
        p.relative_to(ROOT)
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if p.name != "__init__.py" and "conf" not in p.relative_to(ROOT).parts
    )


def architecture() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Architecture", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("module", modules(), ids=str)
def test_readme_architecture_names_every_module(module):
    rows = [r for r in architecture().splitlines() if r.startswith("| `")]
    if len(module.parts) == 2 and module.parts[0] == "regexp":  # regexp/cli.py
        assert any(f"`{module}`" in r for r in rows), module
        return
    folder = f"`{module.parent}/`"
    row = [r for r in rows if r.startswith(f"| {folder}")]
    assert row, f"no row for {folder}"
    assert f"`{module.stem}`" in row[0], f"{module.stem} is not named in the row of {folder}"


def test_the_layer_contract_covers_every_package_and_top_level_module():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers" and "regexp.core" in str(c))
    named = {n.strip() for layer in layers["layers"] for n in layer.split("|")}
    found = {
        f"regexp.{p.stem if p.suffix else p.name}"
        for p in (ROOT / "regexp").iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists() and p.name != "conf")
    }
    assert found == named


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse((ROOT / path).read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


@pytest.mark.parametrize("module", modules(), ids=str)
def test_hydra_only_through_its_public_api(module):
    private = [m for m, _ in _imports(module) if re.match(r"hydra\._internal\b", m)]
    assert not private, f"{module} imports {private}"


@pytest.mark.parametrize("module", modules(), ids=str)
def test_no_module_imports_anothers_private_names(module):
    own = ".".join(module.with_suffix("").parts)
    for source, names in _imports(module):
        if source.split(".")[0] in PACKAGES and source != own:
            assert not [n for n in names if n.startswith("_")], f"{module}: from {source}"
            assert not [p for p in source.split(".") if p.startswith("_")], module
