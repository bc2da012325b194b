"""Compile the common shaping templates to plain Python: one expression made of literals,
dicts and lists of them, variables, `.field` and `[key]` reads, and the `pick` filter
(alone, or as `map("pick", ...) | list`). A sandboxed Jinja render of such a template costs
tens of microseconds; the closures here, a few.

Anything else is left to Jinja (None is returned). At run time, data that is not of the
plain shape raises gateway.snapshot.shapes.Unshaped and Jinja renders it after all, so the
result is Jinja's in every case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes

from gateway.filters import pick
from gateway.snapshot.shapes import Unshaped, field, item, name

__all__ = ["compile_shape"]

Shape = Callable[[Mapping[str, Any]], Any]


class _NotSimple(Exception):
    """The template uses something this compiler does not handle."""


def compile_shape(tree: nodes.Template) -> Shape | None:
    """The template as a Python function of its context, or None (Jinja renders it)."""
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    try:
        return _expression(body[0].nodes[0])
    except _NotSimple:
        return None


def _constant(node: nodes.Node) -> Any:
    if not isinstance(node, nodes.Const):
        raise _NotSimple
    return node.value


def _expression(node: nodes.Node) -> Shape:
    if isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, (dict, list, set)):
            raise _NotSimple  # mutable: Jinja would hand out the same object each time
        return lambda context: value
    if isinstance(node, nodes.Name) and node.ctx == "load":
        key = node.name
        return lambda context: name(context, key)
    if isinstance(node, nodes.Getattr):
        inner, attr = _expression(node.node), node.attr
        return lambda context: field(inner(context), attr)
    if isinstance(node, nodes.Getitem) and node.ctx == "load":
        inner, key = _expression(node.node), _constant(node.arg)
        return lambda context: item(inner(context), key)
    if isinstance(node, nodes.Dict):
        pairs = [(_constant(pair.key), _expression(pair.value)) for pair in node.items]
        if not all(isinstance(key, str) for key, _ in pairs):
            raise _NotSimple
        return lambda context: {key: value(context) for key, value in pairs}
    if isinstance(node, nodes.List):
        items = [_expression(element) for element in node.items]
        return lambda context: [element(context) for element in items]
    if isinstance(node, nodes.Filter):
        return _filter(node)
    raise _NotSimple


def _filter(node: nodes.Filter) -> Shape:
    if node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
        raise _NotSimple
    if node.node is None:
        raise _NotSimple  # a filter block
    args = [_constant(arg) for arg in node.args]
    if node.name == "pick" and all(isinstance(arg, str) for arg in args):
        inner = _expression(node.node)
        return lambda context: pick(inner(context), *args)
    if node.name == "list" and not args:
        source = node.node
        if isinstance(source, nodes.Filter) and source.name == "map":
            return _map_pick(source)
        inner = _expression(source)
        return lambda context: _as_list(inner(context))
    raise _NotSimple


def _map_pick(node: nodes.Filter) -> Shape:
    """`value | map("pick", "a", "b") | list`."""
    if node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
        raise _NotSimple
    if node.node is None:
        raise _NotSimple
    args = [_constant(arg) for arg in node.args]
    if not args or args[0] != "pick" or not all(isinstance(arg, str) for arg in args):
        raise _NotSimple
    keys = args[1:]
    inner = _expression(node.node)

    def mapped(context: Mapping[str, Any]) -> Any:
        value = inner(context)
        if type(value) is not list:
            raise Unshaped
        return [pick(element, *keys) for element in value]

    return mapped


def _as_list(value: Any) -> Any:
    if type(value) is not list:
        raise Unshaped
    return list(value)
