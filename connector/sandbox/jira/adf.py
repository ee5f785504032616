"""Atlassian Document Format (ADF) <-> the plain text (wiki markup) the simulator stores.

API v3 speaks ADF for rich-text fields and comment bodies, v2 speaks wiki-markup strings. The
simulator stores text and converts at the edge: text becomes one paragraph per blank-line-separated
block with ``hardBreak`` for single newlines; ADF becomes wiki markup (headings ``h1.``, lists
``*``/``#``, ``{code}`` blocks, ``*strong*``, ``_em_``, ``[text|url]`` links). Plain text survives the
round trip unchanged.
"""

from __future__ import annotations

import re
from typing import Any

NOT_A_DOCUMENT = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"

_MARKS = {"strong": "*{}*", "em": "_{}_", "strike": "-{}-", "code": "{{{{{}}}}}", "underline": "+{}+"}


def text_to_adf(text: str) -> dict[str, Any]:
    """An ADF document for ``text``: blank lines separate paragraphs, newlines become hard breaks."""
    content: list[dict[str, Any]] = []
    for block in re.split(r"\n\s*\n", text.strip("\n")):
        if not block:
            continue
        inline: list[dict[str, Any]] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                inline.append({"type": "hardBreak"})
            if line:
                inline.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": inline})
    return {"type": "doc", "version": 1, "content": content}


def is_adf(value: Any) -> bool:
    """True when ``value`` looks like an ADF document (``type: doc``, ``version: 1``, node list)."""
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
        and all(isinstance(node, dict) and isinstance(node.get("type"), str) for node in value["content"])
    )


def adf_to_text(document: dict[str, Any]) -> str:
    """Wiki-markup text for an ADF document; unknown nodes contribute their text content."""
    return "\n\n".join(block for block in (_block(node) for node in document.get("content", [])) if block)


def _block(node: dict[str, Any]) -> str:
    kind = node.get("type")
    children = node.get("content", [])
    if kind == "paragraph":
        return _inline(children)
    if kind == "heading":
        return f"h{node.get('attrs', {}).get('level', 1)}. {_inline(children)}"
    if kind in ("bulletList", "orderedList"):
        bullet = "*" if kind == "bulletList" else "#"
        return "\n".join(f"{bullet} {_items(item)}" for item in children)
    if kind == "codeBlock":
        return "{code}\n" + _inline(children) + "\n{code}"
    if kind == "blockquote":
        return "{quote}\n" + "\n\n".join(_block(child) for child in children) + "\n{quote}"
    if kind == "rule":
        return "----"
    return "\n\n".join(_block(child) for child in children) if children else _inline([node])


def _items(item: dict[str, Any]) -> str:
    return " ".join(_block(child) for child in item.get("content", []))


def _inline(nodes: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for node in nodes:
        kind = node.get("type")
        attrs = node.get("attrs", {})
        if kind == "text":
            parts.append(_marked(str(node.get("text", "")), node.get("marks", [])))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            parts.append(str(attrs.get("text", "")))
        elif kind == "emoji":
            parts.append(str(attrs.get("text") or attrs.get("shortName", "")))
        elif kind in ("inlineCard", "blockCard"):
            parts.append(str(attrs.get("url", "")))
        elif node.get("content"):
            parts.append(_inline(node["content"]))
    return "".join(parts)


def _marked(text: str, marks: list[dict[str, Any]]) -> str:
    for mark in marks:
        kind = mark.get("type", "")
        if kind == "link":
            text = f"[{text}|{mark.get('attrs', {}).get('href', '')}]"
        elif kind in _MARKS:
            text = _MARKS[kind].format(text)
    return text
