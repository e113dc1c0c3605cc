"""Checks an answer of `ajs3 web` against its OpenAPI document (ajs3/web/openapi.json):
the route and method are in it, the status is one it lists (or its default), the
content type is the one it gives, and a JSON body validates against its schema
(OpenAPI 3.1 schemas are JSON Schema 2020-12: checked with jsonschema)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

DOCUMENT = Path(__file__).resolve().parents[1] / "ajs3" / "web" / "openapi.json"


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return doc


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", r"[^/]+", re.escape(path)) + "$")


def operation(method: str, path: str) -> dict[str, Any]:
    """The operation of the document that serves ``method path`` (exact paths first)."""
    paths = document()["paths"]
    plain = urlsplit(path).path
    if plain in paths:
        found: dict[str, Any] = paths[plain][method.lower()]
        return found
    for template, item in paths.items():
        if "{" in template and _template(template).match(plain):
            found = item[method.lower()]
            return found
    raise AssertionError(f"{method} {plain} is not in the OpenAPI document")


def check_answer(method: str, path: str, status: int, body: Any, ctype: str | None) -> None:
    op = operation(method, path)
    responses = op["responses"]
    response = responses.get(str(status)) or responses.get("default")
    assert response is not None, f"{method} {path}: status {status} is not in the document"
    media = response["content"]
    kind = (ctype or "").split(";")[0].strip()
    assert kind in media, f"{method} {path}: {kind} is not among {list(media)}"
    if kind == "application/json":
        schema = {**media[kind]["schema"], "components": document()["components"]}
        jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
