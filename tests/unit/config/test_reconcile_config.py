"""``reconcile:`` in connector.yaml, and ``polling.sweep_interval`` still read as its former name."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.config import load_config
from connector.core.errors import ConfigError

CONNECTOR = Path("config/connector.yaml")


def write(root: Path, polling: str = "", reconcile: str = "") -> None:
    path = root / CONNECTOR
    text = path.read_text().replace("  page_size: 100\n", f"  page_size: 100\n{polling}")
    path.write_text(text + reconcile)


def test_defaults(config_tree: Path) -> None:
    connector = load_config(CONNECTOR).connector
    settings = connector.reconcile
    assert (settings.interval, settings.share, settings.retire_after) == (
        timedelta(minutes=10),
        0.1,
        timedelta(days=7),
    )
    assert connector.polling.sweep_interval == settings.interval


def test_reconcile_section_is_read(config_tree: Path) -> None:
    write(config_tree, reconcile="reconcile:\n  interval: 1h\n  share: 0.25\n  retire_after: 30d\n")
    loaded = load_config(CONNECTOR)
    settings = loaded.connector.reconcile
    assert (settings.interval, settings.share, settings.retire_after) == (
        timedelta(hours=1),
        0.25,
        timedelta(days=30),
    )
    # The engine of before the reconciler still reads the old name: it follows.
    assert loaded.connector.polling.sweep_interval == timedelta(hours=1)
    assert not [w for w in loaded.warnings if "reconcile" in str(w)]


def test_sweep_interval_is_a_deprecated_alias(config_tree: Path) -> None:
    write(config_tree, polling="  sweep_interval: 4s\n")
    loaded = load_config(CONNECTOR)
    assert loaded.connector.reconcile.interval == timedelta(seconds=4)
    assert loaded.connector.polling.sweep_interval == timedelta(seconds=4)
    assert [str(w) for w in loaded.warnings if "sweep_interval" in str(w)] == [
        "config/connector.yaml:30:3: warning: polling.sweep_interval: deprecated: this is reconcile.interval now "
        "(write that instead)"
    ]


def test_reconcile_interval_wins_over_the_alias(config_tree: Path) -> None:
    write(config_tree, polling="  sweep_interval: 4s\n", reconcile="reconcile:\n  interval: 20m\n")
    loaded = load_config(CONNECTOR)
    assert (
        loaded.connector.reconcile.interval
        == loaded.connector.polling.sweep_interval
        == timedelta(minutes=20)
    )
    assert [str(w) for w in loaded.warnings if "sweep_interval" in str(w)] == [
        "config/connector.yaml:30:3: warning: polling.sweep_interval: deprecated: this is reconcile.interval now "
        "(reconcile.interval is set and wins)"
    ]


@pytest.mark.parametrize(
    ("polling", "reconcile", "expected"),
    [
        ("", "reconcile:\n  share: 0\n", "reconcile.share: must be greater than 0"),
        ("", "reconcile:\n  share: 1.5\n", "reconcile.share: must be less than or equal to 1"),
        ("  sweep_interval: soon\n", "", "polling.sweep_interval: 'soon' is not a duration"),
        ("", "reconcile:\n  interval: soon\n", "reconcile.interval: 'soon' is not a duration"),
    ],
)
def test_mistakes_are_reported_once_where_written(
    config_tree: Path, polling: str, reconcile: str, expected: str
) -> None:
    write(config_tree, polling=polling, reconcile=reconcile)
    with pytest.raises(ConfigError) as raised:
        load_config(CONNECTOR)
    errors = [str(p) for p in raised.value.problems if p.severity == "error"]
    assert len(errors) == 1, errors
    assert expected in errors[0]
