"""DESIGN.md's import rules, proved.

Dynamic: each layer is imported in a fresh interpreter with the packages it must not need blocked
by a `sys.meta_path` finder (an import of a blocked package raises ImportError). Static: an
`ast` walk over the source checks who imports what.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentcast

SRC = Path(agentcast.__file__).resolve().parent

ALL_THIRD_PARTY = "*"
"""Block every top-level package that is neither the standard library nor agentcast."""

_PROBE = textwrap.dedent(
    """
    import importlib, json, sys

    blocked = set(json.loads(sys.argv[1]))
    everything = "*" in blocked
    allowed = set(sys.stdlib_module_names) | {"agentcast"}

    def is_blocked(name):
        top = name.partition(".")[0]
        return top in blocked or (everything and top not in allowed)

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if is_blocked(name):
                raise ImportError(f"blocked: {name}")
            return None

    for loaded in [m for m in sys.modules if is_blocked(m) and m != "__main__"]:
        del sys.modules[loaded]
    sys.meta_path.insert(0, Blocker())

    module = importlib.import_module(sys.argv[2])
    for attribute in json.loads(sys.argv[3]):
        getattr(module, attribute)
    leaked = sorted(m for m in sys.modules if is_blocked(m) and m != "__main__")
    assert not leaked, f"blocked modules loaded anyway: {leaked}"
    print("ok", sys.argv[2])
    """
)


def probe(module: str, blocked, attributes=()) -> subprocess.CompletedProcess[str]:
    blocked_list = sorted(blocked) if blocked != ALL_THIRD_PARTY else [ALL_THIRD_PARTY]
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _PROBE,
            json.dumps(blocked_list),
            module,
            json.dumps(list(attributes)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


CASES = [
    (
        "agentcast.events",
        {
            "langchain_core",
            "langgraph",
            "anyio",
            "rich",
            "starlette",
            "fastapi",
            "aiosqlite",
            "httpx",
        },
        (),
    ),
    pytest.param(
        "agentcast.errors",
        ALL_THIRD_PARTY,
        (),
        id="agentcast.errors-without-all",
    ),
    (
        "agentcast",
        {"langchain_core", "langgraph", "rich", "starlette", "fastapi", "aiosqlite"},
        ("emit", "LLMToken", "AgentcastError", "__version__"),
    ),
    ("agentcast.runtime", {"langchain_core", "langgraph", "rich", "starlette", "fastapi"}, ()),
    ("agentcast.sessions", {"langchain_core", "rich", "starlette"}, ()),
    (
        "agentcast.sessions",
        {
            "langchain_core",
            "langgraph",
            "rich",
            "starlette",
            "aiosqlite",
            "platformdirs",
            "psycopg",
            "redis",
        },
        ("MemoryStore", "open_store"),
    ),
    (
        "agentcast.sessions.sqlite",
        {"langchain_core", "langgraph", "rich", "starlette", "fastapi"},
        ("SQLiteStore",),
    ),
    # The broker's package loads its backend (redis-py) only when a broker is opened.
    ("agentcast.broker", {"redis", "starlette", "fastapi", "langchain_core"}, ("open_broker",)),
    ("agentcast.console", {"langchain_core", "langgraph", "anyio", "aiosqlite", "starlette"}, ()),
    ("agentcast.sources", {"langchain_core", "langgraph"}, ("Source", "RunSink", "RunRequest")),
    ("agentcast.sources._base", {"langchain_core", "langgraph", "anyio", "rich"}, ()),
]


def _case_id(module: str, blocked) -> str:
    return f"{module}-without-{'all' if blocked == ALL_THIRD_PARTY else ','.join(sorted(blocked))}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "blocked", "attributes"),
    [
        case if hasattr(case, "marks") else pytest.param(*case, id=_case_id(*case[:2]))
        for case in CASES
    ],
)
def test_layer_imports_without_forbidden_packages(module, blocked, attributes):
    result = probe(module, blocked, attributes)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {module}"


@pytest.mark.slow
def test_the_probe_can_fail_native_source_needs_langchain():
    result = probe("agentcast.sources.native", {"langchain_core"})
    assert result.returncode != 0
    assert "ImportError: blocked: langchain_core" in result.stderr


@pytest.mark.slow
def test_the_probe_can_fail_heavy_names_of_the_top_level_package_are_lazy():
    # `import agentcast` works without LangChain (above); touching `Agent` loads it.
    result = probe("agentcast", {"langchain_core"}, ("Agent",))
    assert result.returncode != 0
    assert "blocked: langchain_core" in result.stderr
    result = probe("agentcast.sources", {"langchain_core"}, ("NativeAgentSource",))
    assert result.returncode != 0
    assert "blocked: langchain_core" in result.stderr


@pytest.mark.slow
def test_the_probe_can_fail_events_need_msgspec():
    result = probe("agentcast.events", ALL_THIRD_PARTY)
    assert result.returncode != 0
    assert "blocked: msgspec" in result.stderr


# -- static rules ----------------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports (`from a import b` counts as `a` and `a.b`), at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


IMPORTS = {path.relative_to(SRC).as_posix(): _imports(path) for path in sorted(SRC.rglob("*.py"))}


def _importers(*tops: str) -> set[str]:
    return {
        file
        for file, modules in IMPORTS.items()
        if any(m == top or m.startswith(top + ".") for m in modules for top in tops)
    }


def _allowed(file: str, prefixes: tuple[str, ...]) -> bool:
    return any(file == p or (p.endswith("/") and file.startswith(p)) for p in prefixes)


def test_the_scanner_sees_the_source_tree():
    assert {"agents/_agent.py", "events/_types.py", "sessions/sqlite.py", "runtime/run.py"} <= set(
        IMPORTS
    )
    assert "aiosqlite" in IMPORTS["sessions/sqlite.py"]
    assert "langchain_core.language_models.BaseChatModel" in IMPORTS["agents/_agent.py"]
    assert "agentcast.sources._base.Source" in IMPORTS["runtime/run.py"]
    assert "sessions/sqlite.py" in _importers("aiosqlite")


def test_only_sources_models_testing_and_agents_import_langchain():
    allowed = ("sources/", "models/", "testing/", "agents/")
    offenders = {f for f in _importers("langchain_core", "langgraph") if not _allowed(f, allowed)}
    assert offenders == set()


def test_only_the_sqlite_backend_imports_aiosqlite():
    assert _importers("aiosqlite") == {"sessions/sqlite.py"}


def test_only_the_postgres_backend_imports_psycopg():
    assert _importers("psycopg", "psycopg_pool") == {"sessions/postgres.py"}


def test_only_the_redis_backends_import_redis():
    # One module per backend: the session store, and the broker (issue 11).
    assert _importers("redis") == {"sessions/redis.py", "broker/redis.py"}


def test_only_console_and_cli_import_rich():
    offenders = {f for f in _importers("rich") if not _allowed(f, ("console/", "cli/"))}
    assert offenders == set()


def test_only_server_imports_starlette_or_fastapi():
    offenders = {f for f in _importers("starlette", "fastapi") if not _allowed(f, ("server/",))}
    assert offenders == set()


def test_nothing_imports_the_cli():
    # `python -m agentcast` (__main__.py) is an entry point beside the cli, not a layer below it.
    offenders = {
        f
        for f in _importers("agentcast.cli")
        if not _allowed(f, ("cli/",)) and not f.endswith("__main__.py")
    }
    assert offenders == set()


def test_events_import_only_the_standard_library_and_msgspec():
    allowed = set(sys.stdlib_module_names) | {"msgspec", "agentcast"}
    for file, modules in IMPORTS.items():
        if not file.startswith("events/"):
            continue
        tops = {m.partition(".")[0] for m in modules if m}
        assert tops <= allowed, f"{file} imports {tops - allowed}"
        ours = {m for m in modules if m.startswith("agentcast.")}
        assert all(m.startswith(("agentcast.events", "agentcast.errors")) for m in ours), (
            f"{file} imports a higher layer: {ours}"
        )


def test_errors_module_imports_only_the_standard_library():
    tops = {m.partition(".")[0] for m in IMPORTS["errors.py"]}
    assert tops <= set(sys.stdlib_module_names), tops - set(sys.stdlib_module_names)


def test_the_id_rule_depends_on_the_standard_library_and_errors_only():
    # Every layer (events' users, sessions, runtime, sources, server) applies it.
    ours = {m for m in IMPORTS["ids.py"] if m.startswith("agentcast")}
    tops = {m.partition(".")[0] for m in IMPORTS["ids.py"]} - {"agentcast"}
    assert tops <= set(sys.stdlib_module_names)
    assert all(m.startswith("agentcast.errors") for m in ours), ours


SOURCE_CONTRACT = {"agentcast.sources._base", "agentcast.sources"}
CONTRACT_NAMES = {"RunRequest", "RunSink", "Source"}


def test_runtime_depends_on_the_source_contract_only():
    for file, modules in IMPORTS.items():
        if not file.startswith("runtime/"):
            continue
        for module in sorted(modules):
            if not module.startswith("agentcast.sources"):
                continue
            head, _, name = module.rpartition(".")
            assert (
                module in SOURCE_CONTRACT
                or head == "agentcast.sources._base"
                or (head == "agentcast.sources" and name in CONTRACT_NAMES)
            ), f"{file} imports {module}: the runtime may only use the Source contract"
        for concrete in ("native", "llm_call", "normalize", "_nested"):
            assert not any(
                m == f"agentcast.sources.{concrete}"
                or m.startswith(f"agentcast.sources.{concrete}.")
                for m in modules
            ), f"{file} imports agentcast.sources.{concrete}"


# -- the layer order ---------------------------------------------------------------------------

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("agentcast.cli", "agentcast.__main__")),
    ("testing", ("agentcast.testing",)),
    ("facade", ("agentcast",)),  # the package's `__init__` only (lazy re-exports), see _layer
    ("server", ("agentcast.server",)),
    ("broker", ("agentcast.broker",)),  # under the server, over the runtime it replicates
    ("client", ("agentcast.client",)),
    ("agents", ("agentcast.agents",)),
    ("encoders", ("agentcast.encoders",)),
    ("console", ("agentcast.console",)),
    ("runtime", ("agentcast.runtime",)),
    ("sessions", ("agentcast.sessions",)),
    ("sources", ("agentcast.sources",)),
    ("models", ("agentcast.models",)),
    ("events", ("agentcast.events",)),
    ("ids", ("agentcast.ids",)),
    ("errors", ("agentcast.errors",)),
    ("base", ("agentcast._version", "agentcast._backoff")),  # standard library only
]
"""agentcast's own layers, top to bottom: a module may import its own layer and those below.

Every import counts, at any depth (inside functions too) and under `TYPE_CHECKING`: a type
from a higher layer is knowledge of that layer all the same. The import-cycle check below
leaves `TYPE_CHECKING` imports out, because they never execute: a type-only reference between
two modules cannot make an import cycle.
"""

MODULES = {_module_name(SRC / file): file for file in IMPORTS}


def _layer(module: str) -> int | None:
    """The index in LAYERS of the layer `module` belongs to (None: in no layer).

    A prefix covers its submodules, except the facade's `agentcast`: a module at the package
    root must be listed (`agentcast._version`), so a new one cannot slip in unplaced.
    """
    best: tuple[int, int] | None = None  # (prefix length, index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            covers = module == prefix or (prefix != "agentcast" and module.startswith(prefix + "."))
            if covers and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def _target(imported: str) -> str | None:
    """The agentcast module an imported name lives in (`a.b.Name` -> `a.b`)."""
    name = imported
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def upward_imports(imports: dict[str, set[str]]) -> list[str]:
    """Every `module imports higher-layer module` in a {module: imported names} map."""
    found = []
    for module, names in sorted(imports.items()):
        here = _layer(module)
        assert here is not None, f"{module} is in no layer of LAYERS"
        for name in sorted(names):
            layer = _layer(_target(name) or name) if name.startswith("agentcast") else None
            if layer is not None and layer < here:
                found.append(f"{module} ({LAYERS[here][0]}) imports {name} ({LAYERS[layer][0]})")
    return found


def _runtime_imports(path: Path) -> set[str]:
    """The agentcast modules a file imports when it runs (`TYPE_CHECKING` blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names = [f"{module}.{alias.name}" for alias in node.names]
        found.update(t for t in map(_target, names) if t is not None)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of a {module: modules it imports} graph (one per strongly connected set)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


AGENTCAST_IMPORTS = {
    _module_name(SRC / file): {m for m in modules if m.startswith("agentcast")}
    for file, modules in IMPORTS.items()
}
RUNTIME_GRAPH = {
    _module_name(SRC / file): _runtime_imports(SRC / file) - {_module_name(SRC / file)}
    for file in IMPORTS
}


def test_every_module_is_in_a_layer():
    assert sorted(m for m in MODULES if _layer(m) is None) == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(AGENTCAST_IMPORTS) == []


def test_the_layer_check_can_fail_on_an_upward_import():
    # A synthetic source that imports the server from the sessions layer, lazily.
    synthetic = {"agentcast.sessions.memory": {"agentcast.server.app.create_app"}}
    assert upward_imports(synthetic) == [
        "agentcast.sessions.memory (sessions) imports agentcast.server.app.create_app (server)"
    ]
    assert upward_imports({"agentcast.server.app": {"agentcast.sessions.SessionStore"}}) == []


def test_the_scanner_sees_imports_inside_functions_and_type_checking():
    assert "agentcast.server._state.ServerState" in IMPORTS["server/_ws.py"]  # TYPE_CHECKING
    assert "agentcast.server._requests.InvokeRequest" in IMPORTS["server/_ws.py"]  # in a function
    assert "agentcast.server._state" not in RUNTIME_GRAPH["agentcast.server._ws"]


def test_there_is_no_import_cycle_between_modules():
    assert import_cycles(RUNTIME_GRAPH) == []


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
