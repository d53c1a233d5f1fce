"""Attribute names under a request's JSON-LD @context. The broker stores names compacted with the NGSI-LD core
context (ngsi_core_context.json, the standard's term → IRI mappings kept in the package, never downloaded):
a name a user context maps to another IRI is stored as that IRI, so two clients whose contexts give one term
different meanings do not write the same attribute, and each reads names back in its own terms.

pyld does the expansion and compaction, with a document loader that serves the core context from the file and
user contexts only as check_context already fetched them: it never reaches the network. Requests with no
context or the core one skip all of this (names are kept as sent: the core context maps them to themselves).
Entity types and sub-attribute names are kept as sent.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pyld import jsonld

from smartcity.sensing.ngsi_wire import CORE_CONTEXT, NgsiError, fetched

CORE = json.loads(Path(__file__).with_name("ngsi_core_context.json").read_text())["@context"]
# Members of an entity that are not attribute names.
KEPT = frozenset({"id", "type", "@context", "@id", "@type"})


def _loader(url: str, options: dict | None = None) -> dict:
    document = {"@context": CORE} if url == CORE_CONTEXT else fetched(url)
    if document is None:
        raise jsonld.JsonLdError(
            f"{url} is not fetched here", "jsonld.LoadDocumentError", code="loading document failed"
        )
    return {"contextUrl": None, "documentUrl": url, "document": document}


OPTIONS = {"documentLoader": _loader}


def resolved(context: Any) -> list | None:
    """The request's context as inline objects, the core context left out; None: core terms only."""
    items = context if isinstance(context, list) else [] if context is None else [context]
    out: list = []
    for item in items:
        if item == CORE_CONTEXT:
            continue
        if isinstance(item, str):
            document = fetched(item)
            if document is None:
                raise NgsiError(503, "LdContextNotAvailable", f"the @context {item} is not available")
            item = document["@context"]
        out.extend(item if isinstance(item, list) else [item])
    return out or None


@functools.lru_cache(maxsize=4096)
def _stored_name(key: str, term: str) -> str:
    # The core context comes last, as the standard has it: its terms cannot be redefined by a user context.
    try:
        expanded = jsonld.expand({"@context": [*json.loads(key), CORE], term: "x"}, OPTIONS)
        if not expanded or not expanded[0]:
            return term
        iri = next(iter(expanded[0]))
        compacted = jsonld.compact({iri: "x"}, {"@context": CORE}, OPTIONS)
    except jsonld.JsonLdError as exc:
        raise NgsiError(400, "BadRequestData", f"the @context cannot be applied to {term!r}: {exc}") from None
    return next(k for k in compacted if k != "@context")


@functools.lru_cache(maxsize=4096)
def _client_name(key: str, name: str) -> str:
    try:
        expanded = jsonld.expand({"@context": CORE, name: "x"}, OPTIONS)
        if not expanded or not expanded[0]:
            return name
        iri = next(iter(expanded[0]))
        compacted = jsonld.compact({iri: "x"}, {"@context": [*json.loads(key), CORE]}, OPTIONS)
    except jsonld.JsonLdError:
        return name
    return next(k for k in compacted if k != "@context")


class Names:
    """A request's names ↔ the stored ones."""

    def __init__(self, context: Any = None) -> None:
        user = resolved(context)
        self.key = json.dumps(user, sort_keys=True) if user else ""

    @classmethod
    def of_key(cls, key: str) -> Names:
        """The names of a context kept by its key (a subscription's, for its notifications)."""
        names = cls()
        names.key = key
        return names

    def stored(self, term: str) -> str:
        return _stored_name(self.key, term) if self.key and term not in KEPT else term

    def client(self, name: str) -> str:
        return _client_name(self.key, name) if self.key and name not in KEPT else name

    def stored_names(self, names: set[str] | None) -> set[str] | None:
        return None if names is None else {self.stored(n) for n in names}

    def entity_in(self, raw: Any) -> Any:
        """A sent entity with its attribute names as stored (anything not an object is left to be refused)."""
        if not self.key or not isinstance(raw, dict):
            return raw
        return {self.stored(k): v for k, v in raw.items()}

    def attrs_out(self, attrs: dict) -> dict:
        return {self.client(k): v for k, v in attrs.items()} if self.key else attrs
