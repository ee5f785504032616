"""The shipped files validate; problems from several files arrive together, sorted, secrets unprinted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from connector.config import json_schema as config_schema
from connector.config import load_config
from connector.core.errors import ConfigError
from tests.conftest import REPO

SHIPPED_CONFIGS = [REPO / "config" / "connector.yaml", REPO / "config" / "demo.yaml"]
SCHEMA_LINE = re.compile(r"^# yaml-language-server: \$schema=(?P<path>\S+)$", re.MULTILINE)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configuration_validates(path: Path) -> None:
    loaded = load_config(path)
    assert set(loaded.suppliers) == set(loaded.connector.suppliers) == {"acme", "globex", "initech"}
    assert [rule.name for rule in loaded.rules.rules][:2] == ["payments-outage", "critical-ci-p1"]
    assert all(p.severity == "warning" for p in loaded.warnings)


def test_demo_needs_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIM_DEMO_SN_PASSWORD", "MIM_DEMO_ACME_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert load_config(REPO / "config" / "demo.yaml", check_secrets=True).warnings == ()


def test_production_template_warns_about_each_unset_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIM_SN_PASSWORD", "MIM_ACME_JIRA_TOKEN", "MIM_INITECH_JIRA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    loaded = load_config(REPO / "config" / "connector.yaml", check_secrets=True)
    paths = [w.path for w in loaded.warnings]
    assert paths == [
        "servicenow.auth.password",
        "suppliers.acme.jira.auth.token",
        "suppliers.globex.jira.auth.token",
        "suppliers.initech.jira.auth.token",
    ]


def test_production_template_serves_metrics_on_loopback_only() -> None:
    """/metrics, /healthz and /readyz answer anyone who reaches them: exposing them is a deliberate act."""
    metrics = load_config(REPO / "config" / "connector.yaml").connector.metrics
    assert (metrics.enabled, metrics.host) == (True, "127.0.0.1")


def shipped_yaml() -> list[Path]:
    return [
        *SHIPPED_CONFIGS,
        REPO / "mappings" / "rules.yaml",
        *sorted((REPO / "mappings" / "suppliers").glob("*.yaml")),
    ]


@pytest.mark.parametrize("path", shipped_yaml(), ids=lambda p: p.name)
def test_shipped_yaml_points_editors_at_a_schema_it_satisfies(path: Path) -> None:
    text = path.read_text()
    match = SCHEMA_LINE.search(text)
    assert match, f"{path} lacks a '# yaml-language-server: $schema=' line"
    schema_path = (path.parent / match["path"]).resolve()
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(yaml.safe_load(text), schema, cls=jsonschema.Draft202012Validator)


def test_committed_schemas_are_current() -> None:
    assert config_schema.stale(REPO / "mappings" / "schema") == [], "run `make schema` and commit the result"


def test_every_problem_in_every_file_is_reported_in_file_order(config_tree: Path) -> None:
    edits = {
        "mappings/suppliers/globex.yaml": ("deployment", "display_name: Globex Networks", "display_name: ''"),
        "config/connector.yaml": ("page", "page_size: 100", "page_size: 0"),
        "mappings/rules.yaml": ("rule", "action: promote", "action: escalate"),
    }
    for file, (_tag, old, new) in edits.items():
        path = config_tree / file
        path.write_text(path.read_text().replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(Path("config/connector.yaml"))
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "config/connector.yaml",
        "mappings/rules.yaml",
        "mappings/suppliers/globex.yaml",
    ]


def test_missing_config_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml: file not found" in str(caught.value)


def test_inline_secret_never_appears_in_any_message(config_tree: Path) -> None:
    canary = "CANARY-s3cret-value"
    connector = config_tree / "config" / "connector.yaml"
    connector.write_text(connector.read_text().replace("${TEST_SN_PASSWORD}", canary))
    rules = config_tree / "mappings" / "rules.yaml"  # a syntax error on a line holding the canary
    rules.write_text(
        rules.read_text().replace("description: P1 on a critical CI", f"description: [{canary}: x")
    )
    with pytest.raises(ConfigError) as caught:
        load_config(Path("config/connector.yaml"), check_secrets=True)
    assert [p.file for p in caught.value.problems] == ["config/connector.yaml", "mappings/rules.yaml"]
    assert canary not in str(caught.value)


def test_file_secret_resolves_relative_to_the_config(config_tree: Path) -> None:
    (config_tree / "config" / "secrets").mkdir()
    (config_tree / "config" / "secrets" / "globex.pat").write_text("pat-value-123\n")
    loaded = load_config(Path("config/connector.yaml"), check_secrets=True)
    token = loaded.connector.suppliers["globex"].jira.auth.token
    assert token.resolve().reveal() == "pat-value-123"
    assert [w.path for w in loaded.warnings] == ["servicenow.auth.password", "suppliers.acme.jira.auth.token"]


def test_models_are_frozen(config_tree: Path) -> None:
    loaded = load_config(Path("config/connector.yaml"))
    with pytest.raises(ValueError, match="frozen"):
        loaded.connector.polling.page_size = 5  # type: ignore[misc]


def test_digest_changes_with_content(config_tree: Path) -> None:
    before = load_config(Path("config/connector.yaml")).digest
    rules = config_tree / "mappings" / "rules.yaml"
    rules.write_text(rules.read_text().replace("max_proposals_per_hour: 5", "max_proposals_per_hour: 4"))
    assert load_config(Path("config/connector.yaml")).digest != before
