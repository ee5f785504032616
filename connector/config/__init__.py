"""The files admins edit: YAML in, frozen typed models out, every mistake reported with its line.

``load_config(path)`` is the one entry point; it raises :class:`~connector.core.errors.ConfigError`
carrying a :class:`Problem` per mistake, formatted ``file:line:col: dotted.path: message``.
"""

from connector.config.loader import DEFAULT_CONFIG, LoadedConfig, load_config
from connector.core.problems import Problem

__all__ = ["DEFAULT_CONFIG", "LoadedConfig", "Problem", "load_config"]
