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


def test_the_readme_says_where_usage_comes_from_and_what_under_reports():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Where usage comes from", 1)[1].split("\n## ", 1)[0]
    for integration in ("`openai:`", "`anthropic:`", "`bedrock:`", "`ollama:`"):
        assert integration in section, integration
    assert "stream_usage" in section and "message_delta" in section and "metadata" in section
    assert "`input_tokens: 0`" in section, "the known langchain-anthropic under-report"
    assert 'source:\n"provider"' in section or 'source: "provider"' in section
