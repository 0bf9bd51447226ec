"""Plano-format configuration: load, check and normalize once at startup.

`load_config(path)` reads a Plano YAML file (any version Plano accepts, legacy
forms included) and returns the frozen `Config`; anything wrong is raised as
one `ConfigError` that lists every problem with its key path and line.
"""

from __future__ import annotations

from .errors import ConfigError, Problem
from .loader import find_config_file, load_config, load_config_text
from .schema import (
    Config,
    Listener,
    ListenerType,
    ModelProvider,
    RoutingPreference,
    ServerSettings,
)
from .state_settings import StateConfigError, StateSettings

__all__ = [
    "Config",
    "ConfigError",
    "Listener",
    "ListenerType",
    "ModelProvider",
    "Problem",
    "RoutingPreference",
    "ServerSettings",
    "StateConfigError",
    "StateSettings",
    "find_config_file",
    "load_config",
    "load_config_text",
]
