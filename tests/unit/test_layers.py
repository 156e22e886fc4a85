"""The arrows of the design (shared/DESIGN.md): pipeline/ is pure, SQL stays in store/, nothing imports the CLI.

Imports are read from the source with ast, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
BENCH_SCRIPTS = Path(__file__).resolve().parents[2] / "bench"

QUERY_CONSTRUCTS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "func",
        "text",
        "and_",
        "or_",
        "not_",
        "exists",
        "case",
        "literal",
        "literal_column",
        "union",
        "union_all",
        "join",
        "outerjoin",
        "bindparam",
        "cast",
        "distinct",
        "tuple_",
        "null",
        "true",
        "false",
    }
)
"""Names from sqlalchemy that build SQL statements (engines, sessions and column types are not among them)."""
QUERY_MODULES = ("sqlalchemy.sql", "sqlalchemy.future", "sqlalchemy.dialects")


def _modules(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        yield ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"), path


def imports(source: str, *, module: str) -> Iterator[tuple[str, str | None]]:
    """(module, imported name) for every import in a module's source; the name is None for `import module`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the importing module's package
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                yield base, alias.name


def _targets(module: str, name: str | None) -> set[str]:
    """The modules an import may bring in: `from a import b` can be module a or submodule a.b."""
    return {module} | ({f"{module}.{name}"} if name else set())


def _inside(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def violations_of(source: str, *, module: str) -> list[str]:
    found = []
    for imported, name in imports(source, module=module):
        targets = _targets(imported, name)
        if _inside(module, "service.pipeline"):
            for layer in ("service.store", "service.api", "service.backends", "service.jobs", "service.db"):
                if any(_inside(t, layer) for t in targets):
                    found.append(f"{module} imports {layer} (pipeline/ is pure logic)")
        if not (_inside(module, "service.store") or _inside(module, "service.migrations")):
            if imported == "sqlalchemy" and name in QUERY_CONSTRUCTS:
                found.append(f"{module} builds SQL with sqlalchemy.{name} (SQL belongs in store/)")
            if any(_inside(imported, m) for m in QUERY_MODULES):
                found.append(f"{module} imports {imported} (SQL belongs in store/)")
        if not _inside(module, "service.cli") and any(_inside(t, "service.cli") for t in targets):
            found.append(f"{module} imports the CLI (service.cli)")
    return found


@pytest.mark.parametrize(("module", "path"), list(_modules(SERVICE)), ids=lambda value: str(value))
def test_module_respects_the_layers(module: str, path: Path) -> None:
    assert violations_of(path.read_text(), module=module) == []


def test_bench_scripts_do_not_import_the_cli() -> None:
    for path in BENCH_SCRIPTS.rglob("*.py"):
        found = imports(path.read_text(), module=f"bench.{path.stem}")
        assert not [t for imported, name in found for t in _targets(imported, name) if "service.cli" in t]


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("service.pipeline.x", "from service.store import items\n", "pipeline/ is pure logic"),
        ("service.pipeline.x", "from service import backends\n", "pipeline/ is pure logic"),
        ("service.pipeline.x", "from ..api.schemas import tasks\n", "pipeline/ is pure logic"),
        ("service.jobs.x", "def f():\n    from sqlalchemy import select\n", "SQL belongs in store/"),
        ("service.api.routes.x", "from sqlalchemy.sql import expression\n", "SQL belongs in store/"),
        ("service.demo", "from service.cli import app\n", "imports the CLI"),
        ("service.bench.x", "import service.cli.label\n", "imports the CLI"),
        ("service.jobs.x", "from service import cli\n", "imports the CLI"),
    ],
)
def test_the_checks_catch_each_kind_of_violation(module: str, source: str, expected: str) -> None:
    assert any(expected in v for v in violations_of(source, module=module))


def test_engines_sessions_and_column_types_are_not_sql() -> None:
    source = "from sqlalchemy.orm import Session\nfrom sqlalchemy import Engine, String, create_engine\n"
    assert violations_of(source, module="service.jobs.ok") == []
