"""The README's two commands stay true: CI runs the same test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_the_readme_opens_with_the_install_and_chat_command():
    first, _ = commands()
    assert "pip install -e ." in first and first.endswith("agentcast chat")


def test_ci_runs_the_readme_test_command():
    _, second = commands()
    assert second.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[dev]"' in ci and "\npytest\n" in ci
    assert 'pip install -e ".[dev]"' in second
