"""Checks behind /readyz. Each returns a short status or raises with a message saying what is wrong."""

from __future__ import annotations

from sqlalchemy import Engine, text

from app.db.migrate import current_revision, head_revision
from app.registry.store import ArtifactStore


def database(engine: Engine):
    head = head_revision()

    def check() -> str:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(engine)
        if current != head:
            raise RuntimeError(f"database is at migration {current or 'none'}, head is {head}; "
                               "run `dlserve db upgrade`")
        return f"ok (migration {head})"

    return check


def artifact_store(store: ArtifactStore):
    def check() -> str:
        return store.check()  # the folder writable; the bucket reachable, where there is one

    return check
