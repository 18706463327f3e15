"""`load_agent`: the agent a `module:attribute` or `file.py:attribute` spec names, wrapped."""

from __future__ import annotations

from typing import Any

from agentcast.agents._runner import Runner
from agentcast.agents._wrap import is_graph, wrap
from agentcast.errors import ConfigError

__all__ = ["load_agent"]


def load_agent(spec: str, **options: Any) -> Runner:
    """Load and wrap the agent a `module:attribute` or `path/to/file.py:attribute` spec names.

    The attribute may be an agent, graph, chain or chat model, or a function that returns one.

    Raises:
        ConfigError: the spec is malformed, the module or attribute is missing, or the object
            cannot be streamed.
    """
    import importlib
    import importlib.util
    import sys
    from pathlib import Path

    where, sep, attribute = spec.rpartition(":")
    if not sep or not where or not attribute:
        raise ConfigError(
            f"--agent takes module:attribute or path/to/file.py:attribute, got {spec!r}"
        )
    try:
        if where.endswith(".py") or "/" in where:
            path = Path(where).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"no such file: {where}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.path.insert(0, str(path.parent))
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent))
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module can raise anything on import
        raise ConfigError(f"cannot import {where!r}: {type(exc).__name__}: {exc}") from exc
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{where!r} has no attribute {attribute!r}") from None
    from langchain_core.runnables import Runnable

    if callable(obj) and not isinstance(obj, (Runner, Runnable)) and not is_graph(obj):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - the user's factory can raise anything
            raise ConfigError(
                f"{spec}: calling {attribute}() to build the agent failed:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
    return wrap(obj, **options)
