"""What a template compiled to plain Python (gateway.compiler.shapes) does at run time.

Only data of the plain shape a JSON answer has is handled here: dicts read by their keys,
lists by their indexes. Anything else (a key that is also a dict method, such as `items`;
a field of a string; an index out of range) raises :class:`Unshaped`, and the template is
rendered by Jinja instead: the same result either way, only slower for odd data.
"""

from __future__ import annotations

from typing import Any

import jinja2

__all__ = ["MISSING", "Unshaped", "field", "item", "name"]

MISSING = jinja2.ChainableUndefined()
"""What Jinja gives for a missing key: null in JSON, passed through by `pick`."""
_DICT_ATTRIBUTES = frozenset(dir(dict))


class Unshaped(Exception):
    """The data is not of the plain shape: render with Jinja."""


def name(context: Any, key: str) -> Any:
    try:
        return context[key]
    except KeyError:
        raise Unshaped from None


def field(value: Any, key: str) -> Any:
    """`value.key`: Jinja tries the attribute, then the item."""
    if type(value) is dict and key not in _DICT_ATTRIBUTES:
        return value.get(key, MISSING)
    if value is MISSING:
        return MISSING
    raise Unshaped


def item(value: Any, key: Any) -> Any:
    """`value[key]`: Jinja tries the item, then (for a text key) the attribute."""
    if type(value) is dict:
        if key in value:
            return value[key]
        if isinstance(key, str) and key not in _DICT_ATTRIBUTES:
            return MISSING
        raise Unshaped
    if type(value) is list and type(key) is int and -len(value) <= key < len(value):
        return value[key]
    if value is MISSING:
        return MISSING
    raise Unshaped
