"""Tools for testing code that uses agentcast, and agentcast itself.

- `ScriptedChatModel` (with `Fail`): a real LangChain chat model whose every call streams
  chunks you script, so any chunk shape, failure point or tool call can be reproduced
  without a provider.
- `RecordingSink`: a `RunSink` that records what a source pushes, to test a source alone.
- `check_invariants`: checks a run's events against the nine invariants of DESIGN.md
  (raises `InvariantViolation`), so a source author can check their own source.
- `agentcast.testing.store_conformance` (imported on its own; it needs pytest): the
  behaviour every `SessionStore` must have, as a pytest base class to subclass.
"""

from __future__ import annotations

from agentcast.testing._invariants import InvariantViolation, check_invariants
from agentcast.testing._scripted import Fail, ScriptedChatModel
from agentcast.testing._sink import RecordingSink

__all__ = (
    "Fail",
    "InvariantViolation",
    "RecordingSink",
    "ScriptedChatModel",
    "check_invariants",
)
