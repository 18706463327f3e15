"""The README's two commands stay true: CI runs the same test entry point, from scratch."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = "python3 -m venv .venv && . .venv/bin/activate && "


def commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_the_readme_opens_with_the_install_and_chat_command():
    first, _ = commands()
    assert first == VENV + "pip install -e . && agentcast chat"


def test_the_readme_test_command_is_the_test_entry_point_in_a_new_virtualenv():
    _, second = commands()
    assert second == VENV + "scripts/test"


def test_ci_runs_exactly_the_test_entry_point_in_a_fresh_virtualenv():
    lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines == [
        "set -euo pipefail",
        'cd "$(dirname "$0")/.."',
        "rm -rf .ci-venv",
        "python3 -m venv .ci-venv",
        ". .ci-venv/bin/activate",
        "scripts/test",
    ]


def test_the_test_entry_point_installs_checks_starts_services_then_runs_pytest():
    lines = (ROOT / "scripts" / "test").read_text().splitlines()
    steps = [line for line in lines if line.startswith(("scripts/", "python3 -m pytest"))]
    assert steps == [
        "scripts/install",
        "scripts/check",
        "scripts/services",
        'python3 -m pytest "$@"',
    ]
    install = (ROOT / "scripts" / "install").read_text()
    assert 'pip install --quiet --disable-pip-version-check -e ".[dev]"' in install
    assert "apt-get install -y -qq chromium" in install and "npm ci" in install
    check = (ROOT / "scripts" / "check").read_text()
    for gate in ("ruff check .", "ruff format --check .", "mypy"):
        assert f"\n{gate}\n" in check


def test_the_scripts_are_executable():
    for name in ("install", "check", "services", "test"):
        assert (ROOT / "scripts" / name).stat().st_mode & 0o111, name
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111


def test_the_install_step_outside_a_virtualenv_stops_with_one_line(tmp_path):
    import os
    import subprocess
    import sys

    # The interpreter the test's virtualenv was made from, first on PATH: not a virtualenv.
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if sys.prefix == sys.base_prefix:  # running outside a virtualenv already
        base = Path(sys.executable).resolve()
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(base)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "scripts/install: run inside a virtualenv: python3 -m venv .venv &&"
        " . .venv/bin/activate, then again"
    ]


def test_the_readme_says_where_usage_comes_from_and_what_under_reports():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Where usage comes from", 1)[1].split("\n## ", 1)[0]
    for integration in ("`openai:`", "`anthropic:`", "`bedrock:`", "`ollama:`"):
        assert integration in section, integration
    assert "stream_usage" in section and "message_delta" in section and "metadata" in section
    assert "`input_tokens: 0`" in section, "the known langchain-anthropic under-report"
    assert 'source:\n"provider"' in section or 'source: "provider"' in section
