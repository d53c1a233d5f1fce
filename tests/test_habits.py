"""The test suite's own habits, checked on its source: shared fixtures and helpers come from conftest and
helpers modules (never from another test module), tests use public interfaces (no private members of the
product), and no test starts an event loop in the main thread (a browser test leaves Playwright's running
there, so `asyncio.run` would pass or fail by test order: tests/helpers.run_async runs one in a thread)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p.name != Path(__file__).name)


def is_test_module(module: str) -> bool:
    return module.split(".")[-1].startswith("test_")


def breaches(source: str, where: str) -> list[str]:
    """Where the Python `source` (of the file `where`) breaks one of the habits, as `where:line: what`."""
    tree = ast.parse(source, where)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("tests.") and is_test_module(node.module):
                found.append(f"{where}:{node.lineno}: imports from the test module {node.module}")
            if node.module.split(".")[0] in ("smartcity", "tests"):
                found += [
                    f"{where}:{node.lineno}: imports the private {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
        elif isinstance(node, ast.Import):
            found += [
                f"{where}:{node.lineno}: imports the test module {a.name}"
                for a in node.names
                if a.name.startswith("tests.") and is_test_module(a.name)
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{where}:{node.lineno}: reads the private member {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("asyncio.run", "asyncio.get_event_loop"):
            found.append(f"{where}:{node.lineno}: {ast.unparse(node.func)}() in the main thread (use run_async)")
    return found


def test_the_suite_keeps_its_habits():
    assert [
        b for path in sources() for b in breaches(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS.parent)))
    ] == []


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("from tests.safety.test_api import world\n", "imports from the test module tests.safety.test_api"),
        ("import tests.core.test_events\n", "imports the test module tests.core.test_events"),
        ("from smartcity.safety.service import _profile\n", "imports the private smartcity.safety.service._profile"),
        ("pid = engine._proc.pid\n", "reads the private member engine._proc"),
        ("import asyncio\nasyncio.run(main())\n", "asyncio.run() in the main thread"),
    ],
)
def test_each_breach_is_seen(source, what):
    """The check above can fail: each kind of breach is reported, once, with its line."""
    found = breaches(source, "tests/probe.py")
    assert len(found) == 1 and found[0].startswith("tests/probe.py:") and what in found[0], found


def test_what_the_habits_ask_for_is_not_reported():
    source = (
        "from tests.helpers import run_async\nfrom tests.safety.helpers import make_world\n"
        "from tests.conftest import make_user\nclass A:\n    def f(self):\n        return self._x\n"
    )
    assert breaches(source, "tests/probe.py") == []
