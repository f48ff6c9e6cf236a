"""Each service layer keeps its persistence in one module (DESIGN.md, "Persistence").

For every layer listed in ``STORES``, only that layer's store module runs statements or holds SQL
text; the layer's other modules call the store's functions. No module anywhere in core, the TUI or
the plugins writes SQL that names one of the layer's tables outside its store. The layer's
``schema.py`` declares the tables and migrations and may run DDL only through them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from test_kernel_portable_sql import _strings  # the same reading of string literals

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
SCANNED = [CORE, ROOT / "plugins", ROOT / "tui", ROOT / "storage"]

#: layer folder -> (its persistence module, the prefixes or names of the tables it owns)
STORES = {
    "registry": ("store.py", ("registry_", "calibrators")),
    "jobs": ("store.py", ("jobs", "job_")),
    "features": ("store.py", ("features_",)),
    "tracking": ("store.py", ("tracking_",)),
}
#: the run search language's compiler: it writes the SQL of one query, which TrackingStore.search_rows runs
QUERY_COMPILERS = {"tracking": {"search.py"}}
#: modules whose SQL is DuckDB over feature data in the offline store (its contract), not metadata
FEATURE_DATA_SQL = {"materialize.py", "streaming.py", "transform.py", "window_offline.py"}
#: receivers that are the offline, online or vector store, or a workspace's event stream: not metadata
NOT_METADATA = re.compile(r"\b(offline|online|vectors)\b|workspace$|^_Parser\(")
#: calls that run a statement on a metadata store or a transaction
RUNS_SQL = {"execute", "executemany", "query", "rows", "stream", "insert_rows", "insert_or_ignore", "upsert",
            "exec_driver_sql"}


def _looks_like_sql(text: str) -> bool:
    return bool(re.match(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s", text)) or bool(
        re.search(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET)\b", text, re.DOTALL))


def layer_problems(layer: str, store_module: str, root: Path = CORE) -> list[str]:
    """Return every statement run or SQL text written in a layer's modules other than its store and schema."""
    problems = []
    for path in sorted((root / layer).rglob("*.py")):
        if path.name in (store_module, "schema.py"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(root)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in RUNS_SQL and not NOT_METADATA.search(ast.unparse(node.func.value))):
                problems.append(f"{where}:{node.lineno} runs a statement ({node.func.attr}); "
                                f"call a function of {layer}/{store_module} instead")
        exempt = QUERY_COMPILERS.get(layer, set()) | (FEATURE_DATA_SQL if layer == "features" else set())
        if path.name not in exempt:
            problems += [f"{where}:{line} holds SQL text: {text.strip()[:60]!r}"
                         for line, text in _strings(path) if _looks_like_sql(text)]
    return problems


def foreign_sql(tables: tuple[str, ...], layer_folder: Path) -> list[str]:
    """Return SQL literals outside a layer's store that name one of its tables."""
    names = re.compile(r"\b(FROM|INTO|UPDATE|JOIN)\s+(" + "|".join(
        f"{t}\\w*" if t.endswith("_") else t for t in tables) + r")\b")
    problems = []
    for folder in SCANNED:
        for path in sorted(folder.rglob("*.py")):
            if path.parent == layer_folder and path.name in ("store.py", "schema.py",
                                                             *QUERY_COMPILERS.get(layer_folder.name, ())):
                continue
            for line, text in _strings(path):
                if _looks_like_sql(text) and names.search(text):
                    problems.append(f"{path.relative_to(ROOT)}:{line} names {layer_folder.name}'s table: "
                                    f"{text.strip()[:60]!r}")
    return problems


def test_each_layer_runs_its_statements_only_in_its_store_module() -> None:
    """registry (and each layer listed) runs SQL only through its store module's functions."""
    problems = [p for layer, (module, _) in STORES.items() for p in layer_problems(layer, module)]
    assert not problems, "\n".join(problems)


def test_no_other_module_writes_sql_on_a_layers_tables() -> None:
    """Other layers read a layer's tables through its store's functions, never with SQL of their own."""
    problems = [p for layer, (_, tables) in STORES.items() for p in foreign_sql(tables, CORE / layer)]
    assert not problems, "\n".join(problems)


def test_the_check_finds_sql_outside_a_store(tmp_path: Path) -> None:
    """The scan reports a statement run and SQL text outside the store, and accepts the store itself."""
    layer = tmp_path / "demo"
    layer.mkdir()
    (layer / "store.py").write_text('def get(db):\n    return db.query("SELECT name FROM demo_things")\n')
    (layer / "service.py").write_text(
        'from demo import store\n\n'
        'def names(db):\n    return store.get(db)\n\n'
        'def bad(db):\n    return db.query("SELECT name FROM demo_things WHERE x = ?", (1,))\n'
        'def also_bad(tx):\n    sql = "UPDATE demo_things SET name = ?"\n    return sql\n')
    problems = layer_problems("demo", "store.py", root=tmp_path)
    assert len(problems) == 3, problems
    assert any("service.py:7 runs a statement (query)" in p for p in problems)
    assert any("service.py:9 holds SQL text" in p for p in problems)
    assert not any("store.py" in p.split(":")[0] for p in problems)
