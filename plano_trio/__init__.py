"""plano-trio: a Plano-compatible AI gateway as one trio process."""

__version__ = "0.1.0"
