"""Load ``config/connector.yaml`` and everything it points at, or report every problem at once.

Order: read each file (syntax), validate each against its model (structure), then check meaning
within each file and across files. Every stage runs on every file it can, so one broken file does
not hide the mistakes in another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from connector.config import checks
from connector.config.connector_file import ConnectorConfig
from connector.config.rules_file import RulesFile
from connector.config.supplier_checks import check_supplier
from connector.config.supplier_file import SupplierMapping
from connector.config.validation import validate
from connector.config.yamlsource import SourceDoc, read_yaml
from connector.core.errors import ConfigError
from connector.core.problems import Problem

M = TypeVar("M", ConnectorConfig, RulesFile, SupplierMapping)
DEFAULT_CONFIG = Path("config/connector.yaml")
RULES_FILE = "rules.yaml"
SUPPLIERS_DIR = "suppliers"


@dataclass(frozen=True)
class LoadedConfig:
    """A complete, valid configuration. Immutable; a reload builds a new one."""

    path: Path
    connector: ConnectorConfig
    rules: RulesFile
    suppliers: Mapping[str, SupplierMapping]
    files: tuple[Path, ...]
    digest: str
    """SHA-256 over all files read, to tell whether a reload changed anything."""
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def base_dir(self) -> Path:
        """The folder of ``connector.yaml``; relative paths in it resolve against this."""
        return self.path.parent


def mappings_dir(doc: SourceDoc, connector: ConnectorConfig | None) -> Path:
    """Where rules and supplier mappings live, even when connector.yaml itself is invalid."""
    if connector is not None:
        return doc.path.parent / connector.mappings
    raw = doc.get(("mappings",))
    return doc.path.parent / (raw if isinstance(raw, str) else "../mappings")


def load_config(path: Path = DEFAULT_CONFIG, *, check_secrets: bool = False) -> LoadedConfig:
    """Read, validate and cross-check the whole configuration.

    With ``check_secrets`` unresolvable credential references are reported as warnings.

    Raises:
        ConfigError: with every error found (warnings are included for context).
    """
    problems: list[Problem] = []
    connector_doc = read_yaml(path)
    problems += connector_doc.problems
    connector = _validated(connector_doc, ConnectorConfig, problems)
    if connector is not None:
        problems += checks.check_connector(connector_doc, connector)
        if check_secrets:
            problems += checks.secret_problems(connector_doc, connector)

    folder = mappings_dir(connector_doc, connector)
    mapping_docs: dict[str, tuple[SourceDoc, SupplierMapping | None]] = {}
    for mapping_path in sorted((folder / SUPPLIERS_DIR).glob("*.yaml")):
        doc = read_yaml(mapping_path)
        problems += doc.problems
        mapping_docs[mapping_path.stem] = (doc, _validated(doc, SupplierMapping, problems))
    supplier_names = sorted(set(connector.suppliers) if connector else set(mapping_docs))

    rules_doc = read_yaml(folder / RULES_FILE)
    problems += rules_doc.problems
    rules = _validated(rules_doc, RulesFile, problems)
    if rules is not None:
        problems += checks.check_rules(rules_doc, rules, connector, supplier_names)

    for doc, mapping in mapping_docs.values():
        if mapping is not None:
            problems += check_supplier(doc, mapping, connector)
    if connector is not None:
        problems += checks.check_cross(connector_doc, connector, mapping_docs, folder / SUPPLIERS_DIR)

    problems.sort()
    errors = [p for p in problems if p.severity == "error"]
    if errors or connector is None or rules is None:
        raise ConfigError(problems)
    docs = [connector_doc, rules_doc, *(doc for doc, _ in mapping_docs.values())]
    suppliers = {name: mapping for name, (_, mapping) in mapping_docs.items() if mapping is not None}
    return LoadedConfig(
        path=path,
        connector=connector,
        rules=rules,
        suppliers=MappingProxyType(suppliers),
        files=tuple(doc.path for doc in docs),
        digest=_digest(doc.path for doc in docs),
        warnings=tuple(problems),
    )


def _validated(doc: SourceDoc, model: type[M], problems: list[Problem]) -> M | None:
    if doc.data is None:
        return None
    result, found = validate(doc, model)
    problems += found
    return result


def _digest(paths: Iterable[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(str(path).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()
