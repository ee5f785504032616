"""Validate a :class:`SourceDoc` against a model and turn pydantic's errors into admin-facing problems.

pydantic reports a location as a tuple that includes union tags (``when.field.equals``) and
``[key]`` markers; we walk the model's annotations along that tuple to recover the data path (for
the line number), the model that owns the key (for "did you mean") and the leaf type (for the list
of allowed values).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic.fields import FieldInfo

from connector.config.yamlsource import SourceDoc
from connector.core.problems import Loc, Problem, did_you_mean, one_of

M = TypeVar("M", bound=BaseModel)

_SECRET_WORDS = ("password", "secret", "token")
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
}


def validate(doc: SourceDoc, model: type[M]) -> tuple[M | None, list[Problem]]:
    """Validate ``doc.data`` as ``model``; relative paths in it resolve against ``doc.path``'s folder."""
    if not isinstance(doc.data, dict):
        return None, [doc.problem((), "expected a mapping at the top of the file")]
    try:
        return model.model_validate(doc.data, context={"base_dir": doc.path.parent}), []
    except ValidationError as exc:
        return None, [_problem(doc, model, error) for error in exc.errors(include_url=False)]


@dataclass
class _Walk:
    data_loc: Loc
    owner: type[BaseModel] | None
    leaf: Any
    key_error: bool = False


def _walk(model: type[BaseModel], loc: Loc) -> _Walk:
    """Follow ``loc`` through the annotations of ``model``."""
    data_loc: list[str | int] = []
    owner: type[BaseModel] | None = None
    annotation: Any = model
    parts = list(loc)
    while parts:
        annotation, discriminated = _unwrap(annotation)
        part = parts[0]
        if discriminated is not None:
            tagged = _tag_member(discriminated, part)
            if tagged is not None:
                annotation = tagged
                parts.pop(0)
                continue
            annotation = _first_model(discriminated)
            if annotation is None:
                break
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            info = _field_by_key(annotation, str(part))
            parts.pop(0)
            data_loc.append(part)
            if info is None:
                annotation = None
                break
            annotation = info.annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (list, tuple) or origin is typing.Sequence:
            parts.pop(0)
            data_loc.append(part)
            annotation = args[0] if args else Any
            continue
        if origin is dict or origin is typing.Mapping:
            parts.pop(0)
            data_loc.append(part)
            if parts and parts[0] == "[key]":
                return _Walk(tuple(data_loc), owner, args[0] if args else Any, key_error=True)
            annotation = args[1] if len(args) > 1 else Any
            continue
        data_loc.extend(parts)
        break
    return _Walk(tuple(data_loc), owner, annotation)


def _unwrap(annotation: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """Strip ``Annotated`` and ``Optional``; return union members when a discriminator selects one."""
    discriminator = False
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            base, *meta = typing.get_args(annotation)
            discriminator = discriminator or any(
                isinstance(m, Discriminator) or (isinstance(m, FieldInfo) and m.discriminator) for m in meta
            )
            annotation = base
            continue
        if typing.get_origin(annotation) in (Union, types.UnionType):
            members = tuple(a for a in typing.get_args(annotation) if a is not type(None))
            if len(members) == 1:
                annotation = members[0]
                continue
            return annotation, members if discriminator or _all_literal_typed(members) else None
        return annotation, None


def _all_literal_typed(members: tuple[Any, ...]) -> bool:
    """Unions of models told apart by a literal ``type`` field (``Field(discriminator="type")``)."""
    return all(isinstance(_strip(m), type) and issubclass(_strip(m), BaseModel) for m in members)


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _tag_member(members: tuple[Any, ...], part: Any) -> Any:
    for member in members:
        if typing.get_origin(member) is typing.Annotated:
            for meta in typing.get_args(member)[1:]:
                if isinstance(meta, Tag) and meta.tag == part:
                    return member
        model = _strip(member)
        if isinstance(model, type) and issubclass(model, BaseModel):
            for info in model.model_fields.values():
                if typing.get_origin(info.annotation) is typing.Literal and part in typing.get_args(
                    info.annotation
                ):
                    return member
    return None


def _first_model(members: tuple[Any, ...]) -> Any:
    for member in members:
        model = _strip(member)
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model
    return None


def _field_by_key(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The YAML keys ``model`` accepts, by alias where it has one."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _problem(doc: SourceDoc, model: type[BaseModel], error: Any) -> Problem:
    kind: str = error["type"]
    walk = _walk(model, tuple(error["loc"]))
    loc = walk.data_loc
    message = _message(kind, error, walk)
    if kind == "missing":
        return doc.problem(loc, message) if loc[:-1] in doc.value_marks else doc.problem(loc[:-1], message)
    if kind in ("union_tag_invalid", "union_tag_not_found") and "type" in _tag_field(error):
        return doc.problem((*loc, "type"), message)
    return doc.problem(loc, message, key=kind == "extra_forbidden" or walk.key_error)


def _tag_field(error: Any) -> str:
    return str((error.get("ctx") or {}).get("discriminator", "type")).strip("'")


def _message(kind: str, error: Any, walk: _Walk) -> str:
    ctx = error.get("ctx") or {}
    value = error.get("input")
    leaf_name = str(walk.data_loc[-1]) if walk.data_loc else ""
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        keys = allowed_keys(walk.owner) if walk.owner else []
        hint = did_you_mean(leaf_name, keys)
        return f"unknown key{hint}" if hint else f"unknown key; expected one of: {', '.join(keys)}"
    if kind == "literal_error":
        choices = [str(c) for c in typing.get_args(_strip(walk.leaf))] or _expected(ctx)
        return one_of(str(value), choices)
    if kind == "union_tag_invalid":
        return one_of(str(ctx.get("tag")), _expected(ctx, "expected_tags"))
    if kind == "union_tag_not_found":
        tags = _union_tags(walk.leaf, _tag_field(error))
        return "required key is missing" + (f" (one of: {', '.join(tags)})" if tags else "")
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}, got {_describe(value, leaf_name)}"
    text: str = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    if text.startswith("Input should"):
        text = "must" + text.removeprefix("Input should")
    elif text.startswith(("List should", "Dictionary should", "String should", "Tuple should")):
        text = "must" + text.split(" should", 1)[1]
    return text


def _union_tags(annotation: Any, field: str) -> list[str]:
    _base, members = _unwrap(annotation)
    tags: list[str] = []
    for member in members or ():
        model = _strip(member)
        info = (
            model.model_fields.get(field)
            if isinstance(model, type) and issubclass(model, BaseModel)
            else None
        )
        if info is not None and typing.get_origin(info.annotation) is typing.Literal:
            tags.extend(str(arg) for arg in typing.get_args(info.annotation))
    return tags


def _expected(ctx: dict[str, Any], key: str = "expected") -> list[str]:
    raw = str(ctx.get(key, ""))
    return [part.strip().strip("'") for part in raw.replace(" or ", ",").split(",") if part.strip()]


def _describe(value: Any, leaf_name: str) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"{str(value).lower()} (quote it if you meant text)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if any(word in leaf_name.lower() for word in _SECRET_WORDS):
        return f"a {type(value).__name__}"
    text = str(value)
    return f"'{text[:40]}…'" if len(text) > 40 else f"'{text}'"
