"""There is no path to customer data but the gate: checked on the source, not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

NODE = Path(__file__).resolve().parents[3] / "node"
# store.py manages rows (import, count, delete) and never returns identifiers or features;
# models.py declares the table; gate.py is the only reader.
ALLOWED = {"models.py", "store.py", "gate.py"}


def test_only_the_gate_touches_the_customer_and_purchase_tables() -> None:
    offenders = []
    for path in NODE.rglob("*.py"):
        if path.name in ALLOWED or "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in ("Customer", "Purchase"):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.alias) and node.name in ("Customer", "Purchase"):
                offenders.append(f"{path.name}:{node.lineno}")
            # raw SQL reading the tables counts too
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                sql = node.value.lower()
                words = sql.split()
                if ("customer" in words or "purchase" in words) and (
                    "select" in sql or "from" in words
                ):
                    offenders.append(f"{path.name}:{node.lineno} (SQL)")
    assert offenders == [], f"customer data read outside the gate: {offenders}"


def test_store_returns_no_customer_data() -> None:
    source = (NODE / "store.py").read_text()
    tree = ast.parse(source)
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        if fn.name in ("import_table", "import_purchases", "_replace", "_points"):
            # the import path: rows in, nothing back
            continue
        text = ast.get_source_segment(source, fn) or ""
        for column in ("features", ".phone", ".email"):
            assert column not in text, f"store.{fn.name} touches {column}"
