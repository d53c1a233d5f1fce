"""The catalogues against the code: what `make messages` extracts (babel.cfg and the Makefile's keywords, per
module folder) is found, and every message a page may show has its Korean entry."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir, extract_from_file
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "smartcity"
MODULES = sorted(p.parent.name for p in PACKAGE.glob("*/locale"))


def _keywords() -> dict:
    """The Makefile's MESSAGE_KEYWORDS (one place says how messages are marked), as Babel's keyword specs."""
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("MESSAGE_KEYWORDS"))
    args = shlex.split(line.split(":=", 1)[1])
    given = [args[i + 1] for i, a in enumerate(args) if a == "-k"]
    return {**DEFAULT_KEYWORDS, **parse_keywords(given)}


def _extract(module: str) -> set[tuple[str | None, str]]:
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = _keywords()
    found: set[tuple[str | None, str]] = set()
    for _file, _line, message, _comments, context in extract_from_dir(
        str(PACKAGE / module), method_map, options_map, keywords=keywords
    ):
        found.add((context, message if isinstance(message, str) else message[0]))
    if module == "core":  # the package's top-level files (app.py, cli.py…) go to core's catalogue
        for py in PACKAGE.glob("*.py"):
            for _line, message, _comments, context in extract_from_file("python", str(py), keywords=keywords):
                found.add((context, message if isinstance(message, str) else message[0]))
    return found


def _translated(language: str) -> set[tuple[str | None, str]]:
    done: set[tuple[str | None, str]] = set()
    for po in PACKAGE.glob(f"*/locale/{language}/LC_MESSAGES/messages.po"):
        with po.open("rb") as f:
            for m in read_po(f):
                if m.id and m.string and not m.fuzzy:
                    done.add((m.context, m.id if isinstance(m.id, str) else m.id[0]))
    return done


# A msgid of each kind the extraction must find: a template's, an N_() table's, a gettext(lang, …) call's,
# an NP_() status name's and a module's declared texts.
EXPECTED = {
    "core": [(None, "Page not found"), (None, "Citizen: reports problems, follows them, takes part")],
    "reports": [
        (None, "Report a problem"),
        (None, "This is required."),
        (None, "[{city}] Report #{id} received"),
        ("report status", "In progress"),
        (None, "new reports"),
    ],
    "safety": [
        (None, "Guardian: follows the people in their care"),
        (None, "Control-room operator: handles incidents in their district"),
        (None, "My wards"),
        (None, "{person} arrived at {zone}."),
    ],
}


@pytest.mark.parametrize("module", MODULES)
def test_extraction_finds_each_kind_of_message(module):
    found = _extract(module)
    missing = [m for m in EXPECTED.get(module, []) if m not in found]
    assert not missing, f"make messages would not find {missing} in {module}"
    if module in EXPECTED:
        assert len(found) > 20


def test_every_extracted_message_has_its_korean_entry():
    translated = _translated("ko")
    untranslated = sorted(
        (module, ctx or "", msgid)
        for module in MODULES
        for ctx, msgid in _extract(module)
        if (ctx, msgid) not in translated
    )
    assert not untranslated, "no Korean entry for: " + "; ".join(f"{m}: {c} {i!r}" for m, c, i in untranslated)


def test_no_live_korean_entry_is_obsolete():
    """An obsolete entry (#~) whose msgid the code still uses: `make messages` lost a live translation."""
    live = set().union(*(_extract(m) for m in MODULES))
    for po in PACKAGE.glob("*/locale/ko/LC_MESSAGES/messages.po"):
        with po.open("rb") as f:
            catalogue = read_po(f)
        dead = [m.id for m in catalogue.obsolete.values() if (m.context, m.id) in live]
        assert not dead, f"{po}: live entries marked obsolete: {dead}"
