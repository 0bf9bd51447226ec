"""Versioned schema migrations for the postgres backend.

Applied at startup in one transaction under `pg_advisory_xact_lock`, so
several instances starting at once against a fresh database serialize: the
first creates the tables, the others find the versions recorded and do
nothing.  Running them again is a no-op.  Tables go into the first schema of
the connection's `search_path` (set it with `options=-csearch_path=…` in the
connection string to isolate deployments or tests).

Deliberately not Plano's `conversation_states` table: Plano stores the full
conversation under every response id (O(turns^2) bytes per conversation) and
upserts it.  `plano_trio_turns` stores each turn once, as a delta linked to
its parent (see `model.Turn`), and is append-only.

Indexes: the history walk follows parent pointers child -> parent, i.e. by
primary key, so `previous_response_id` needs no index; `created_at` is
indexed for the TTL cleanup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .pgconn import Conn

log = logging.getLogger("plano_trio.state")

ADVISORY_LOCK_KEY = 0x706C_616E_6F74_7374  # "planotst": any constant unique to plano-trio
MIGRATIONS_TABLE = "plano_trio_schema_migrations"
TURNS_TABLE = "plano_trio_turns"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "turns table",
        (
            f"""
            CREATE TABLE {TURNS_TABLE} (
                response_id text PRIMARY KEY,
                previous_response_id text,
                input_items jsonb NOT NULL,
                output_items jsonb NOT NULL,
                model text NOT NULL,
                provider text NOT NULL,
                created_at timestamptz NOT NULL,
                response jsonb,
                response_output_elided boolean NOT NULL DEFAULT false
            )
            """,
            f"CREATE INDEX {TURNS_TABLE}_created_at_idx ON {TURNS_TABLE} (created_at)",
        ),
    ),
)


def apply_migrations(conn: Conn) -> list[int]:
    """Apply every missing migration in order; return the versions applied now (sync, worker thread)."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (version) VALUES (%s)", (migration.version,))
            applied_now.append(migration.version)
            log.info(
                "state schema migration applied",
                extra={"fields": {"version": migration.version, "description": migration.description}},
            )
    newer = {version for version in done if version > MIGRATIONS[-1].version}
    if newer:
        log.warning(
            "database schema is newer than this plano-trio knows; continuing",
            extra={"fields": {"unknown_versions": sorted(newer)}},
        )
    return applied_now
