"""Text a client may send: anything printable, no control characters.

Every text field, query parameter and form field of the API is `PlainText`, or a
string annotated with `NO_CONTROLS`. Refused: the C0 controls (NUL, tab, newline, ...),
DEL, the C1 controls (U+0080-U+009F) and lone surrogates. PostgreSQL cannot store a NUL
at all, a lone surrogate is not UTF-8, and the others have no business in an email
address, a token or a password, where they only serve to hide one string behind
another in a log or a terminal. Any other Unicode is accepted, emoji and their joiners
included.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# The characters refused, as the body of a regular-expression class (valid in Python
# and in the ECMA-262 dialect of JSON Schema, where the OpenAPI document states it).
_CONTROLS = r"\u0000-\u001f\u007f-\u009f"
# Lone surrogates too; not in the documented pattern, since they are no characters at
# all and JSON Schema's regular expressions cannot name them.
_CONTROL = re.compile(f"[{_CONTROLS}\ud800-\udfff]")
# Any number of allowed characters: for patterns that add rules of their own.
ALLOWED_CHARACTERS = f"[^{_CONTROLS}]*"
PATTERN = f"^{ALLOWED_CHARACTERS}$"
PROBLEM = "must not contain control characters"


def has_controls(value: str) -> bool:
    return _CONTROL.search(value) is not None


def refuse_controls(value: Any) -> Any:
    if isinstance(value, str) and has_controls(value):
        raise ValueError(PROBLEM)
    return value


def strip_controls(value: str) -> str:
    """For text a client does not type itself (a User-Agent header): kept, without
    what could not be stored or shown."""
    return _CONTROL.sub("", value)


class _NoControls:
    """Refuses control characters in a string, and says so in its JSON Schema.

    Put it last in `Annotated[str, Field(max_length=...), NO_CONTROLS]`, so that the
    length is checked first and refused as a string length. Validated in Python, not
    with `Field(pattern=...)`: pydantic's regex engine cannot express surrogates."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(refuse_controls, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", PATTERN)
        return json_schema


NO_CONTROLS = _NoControls()
PlainText = Annotated[str, NO_CONTROLS]
