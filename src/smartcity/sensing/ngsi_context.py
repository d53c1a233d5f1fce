"""Attribute names under a request's JSON-LD @context. The broker stores names compacted with the NGSI-LD core
context (ngsi_core_context.json, the standard's term → IRI mappings kept in the package, never downloaded):
a name a user context maps to another IRI is stored as that IRI, so two clients whose contexts give one term
different meanings do not write the same attribute, and each reads names back in its own terms.

pyld does the expansion and compaction, with a document loader that serves the core context from the file and
user contexts only as check_context already fetched them: it never reaches the network. Requests with no
context or the core one skip all of this (names are kept as sent: the core context maps them to themselves).
Entity types are expanded and compacted the same way (as `@type` values); sub-attribute names are kept as sent.
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


def _context(key: str) -> Any:
    return [*json.loads(key), CORE] if key else CORE


@functools.lru_cache(maxsize=4096)
def _type_iri(key: str, term: str) -> str:
    """An entity type's IRI under a context (a type is expanded as a vocabulary term, like `@type`)."""
    try:
        expanded = jsonld.expand({"@context": _context(key), "@id": "urn:x", "@type": term}, OPTIONS)
    except jsonld.JsonLdError as exc:
        raise NgsiError(400, "BadRequestData", f"the @context cannot be applied to {term!r}: {exc}") from None
    return expanded[0]["@type"][0] if expanded and expanded[0].get("@type") else term


@functools.lru_cache(maxsize=4096)
def _type_term(key: str, iri: str) -> str:
    try:
        compacted = jsonld.compact({"@id": "urn:x", "@type": iri}, {"@context": _context(key)}, OPTIONS)
    except jsonld.JsonLdError:
        return iri
    found = compacted.get("type", compacted.get("@type", iri))
    return found if isinstance(found, str) else iri


@functools.lru_cache(maxsize=4096)
def _attribute_iri(term: str) -> str:
    try:
        expanded = jsonld.expand({"@context": CORE, term: "x"}, OPTIONS)
    except jsonld.JsonLdError:
        return term
    return next(iter(expanded[0])) if expanded and expanded[0] else term


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

    def stored_type(self, term: str) -> str:
        """An entity type as stored: compacted with the core context, so a type a user context maps to another
        IRI is stored (and matched) as that IRI."""
        return _type_term("", _type_iri(self.key, term)) if self.key else term

    def client_type(self, stored: str) -> str:
        return _type_term(self.key, _type_iri("", stored)) if self.key else stored

    @staticmethod
    def type_iri(stored: str) -> str:
        """A stored type's full IRI (the id of EntityType and EntityTypeInfo)."""
        return _type_iri("", stored)

    @staticmethod
    def attribute_iri(stored: str) -> str:
        """A stored attribute name's full IRI (the id of Attribute)."""
        return _attribute_iri(stored)

    def stored_names(self, names: set[str] | None) -> set[str] | None:
        return None if names is None else {self.stored(n) for n in names}

    def entity_in(self, raw: Any) -> Any:
        """A sent entity with its attribute names as stored (anything not an object is left to be refused)."""
        if not self.key or not isinstance(raw, dict):
            return raw
        out = {self.stored(k): v for k, v in raw.items()}
        if isinstance(out.get("type"), str):
            out["type"] = self.stored_type(out["type"])
        return out

    def attrs_out(self, attrs: dict) -> dict:
        """An entity (or its attributes) in the client's terms: attribute names, and the type."""
        if not self.key:
            return attrs
        out = {self.client(k): v for k, v in attrs.items()}
        if isinstance(out.get("type"), str):
            out["type"] = self.client_type(out["type"])
        return out
