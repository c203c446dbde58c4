"""Schema migrations (Alembic), one lineage per role.

A node's database and the coordinator's hold different tables (the coordinator never gets a
table shaped for customer data), so each role has its own migration scripts:
``accord.node:migrations`` and ``accord.coordinator:migrations``. Servers upgrade their schema
to head at start; ``alembic -n node|coordinator -x db=URL upgrade head`` does the same by hand.
"""

from __future__ import annotations

import threading
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

Role = Literal["node", "coordinator"]

SCRIPT_LOCATIONS: dict[str, str] = {
    "node": "accord.node:migrations",
    "coordinator": "accord.coordinator:migrations",
}


def alembic_config(role: Role) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATIONS[role])
    return config


# Alembic's ``context`` and ``op`` are module-level proxies: one migration at a time per process.
_ALEMBIC = threading.Lock()


def upgrade(engine: Engine, role: Role) -> None:
    """Bring ``engine``'s schema for ``role`` to the newest revision."""
    config = alembic_config(role)
    with _ALEMBIC, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
