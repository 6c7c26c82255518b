"""Layers point one way (DESIGN.md): the import contracts of pyproject.toml hold, and no
feature module reaches for an SQL dialect or SQL text."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def imported_by(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_features_import_no_sql_dialect_and_no_sql_text() -> None:
    # import-linter sees external packages only as a whole (sqlalchemy), so this one rule
    # is read from the source.
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "handlers").glob("*.py"))
        for name in imported_by(path)
        if name.startswith("sqlalchemy.dialects") or name == "sqlalchemy.text"
    }
    assert not offending, sorted(offending)
