"""``mim-connector state``: look at and act on the state store (dead letters, watermarks, links)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from connector.config import load_config
from connector.store import Store


def _open(config: Path) -> Store:
    loaded = load_config(config)
    return Store.open(loaded.connector.store.url, loaded.base_dir, actor=loaded.connector.instance_name)


def _label(store: Store, entity: str) -> str:
    incident_sys_id, _, supplier = entity.rpartition(":")
    record = store.incidents.get(incident_sys_id)
    return f"{record.number if record else incident_sys_id} @ {supplier}"


def dlq_list(config: Path, *, every: bool = False, out: TextIO = sys.stdout) -> int:
    """Print the dead letters (queued ones, or all with ``every``)."""
    store = _open(config)
    try:
        letters = store.dlq.list(None if every else "queued")
        if not letters:
            print("the dead-letter queue is empty", file=out)
        for letter in letters:
            due = (
                "next cycle (retry asked)"
                if letter.manual
                else f"{letter.next_attempt_at:%Y-%m-%d %H:%M:%S}Z"
            )
            print(
                f"#{letter.letter_id} {_label(store, letter.entity)} [{letter.state}] attempts={letter.attempts} "
                f"held={letter.held_events} next={due}\n"
                f"    {letter.error_type}: {letter.error}",
                file=out,
            )
    finally:
        store.close()
    return 0


def dlq_act(config: Path, letter_id: int, action: str, *, out: TextIO = sys.stdout) -> int:
    """``retry`` (now, at the next cycle) or ``drop`` one queued letter; exit 1 if there is no such letter."""
    store = _open(config)
    try:
        done = store.dlq.retry_now(letter_id) if action == "retry" else store.dlq.drop(letter_id)
    finally:
        store.close()
    message = {"retry": "will be retried at the next cycle", "drop": "dropped"}[action]
    print(f"#{letter_id} {message}" if done else f"no queued dead letter #{letter_id}", file=out)
    return 0 if done else 1


def show(config: Path, *, out: TextIO = sys.stdout) -> int:
    """Print watermarks, link counts, unfinished intents and the dead-letter count."""
    store = _open(config)
    try:
        for source, mark in sorted(store.watermarks.all().items()):
            print(f"watermark {source}: {mark.position}", file=out)
        links = store.links.active()
        by_supplier: dict[str, int] = {}
        for link in links:
            by_supplier[link.supplier] = by_supplier.get(link.supplier, 0) + 1
        for supplier, count in sorted(by_supplier.items()):
            print(f"links {supplier}: {count}", file=out)
        print(f"intents: {store.intents.counts()}", file=out)
        print(f"dead letters queued: {len(store.dlq.blocked())}", file=out)
    finally:
        store.close()
    return 0
