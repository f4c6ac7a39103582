"""The V2 repository API's load and unload, kept in the database (table repository_controls) so that
every API process and replica follows them within `alias_poll_interval_s`, the way they follow
alias moves: the process that answers the request applies it at once, the others at their next poll."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import ModelVersion, RegisteredModel, RepositoryControl
from app.registry import service


@dataclass(frozen=True)
class Controls:
    unloaded: frozenset[str] = frozenset()  # models unloaded: refused (409) until loaded again
    requested: frozenset[tuple[str, int]] = field(default_factory=frozenset)  # versions a load asked for


def read(session: Session) -> Controls:
    rows = session.execute(
        select(RegisteredModel.name, RepositoryControl.unloaded, ModelVersion.version)
        .select_from(RepositoryControl)
        .join(RegisteredModel, RegisteredModel.id == RepositoryControl.model_id)
        .outerjoin(ModelVersion, ModelVersion.id == RepositoryControl.version_id)
    ).all()
    return Controls(frozenset(name for name, unloaded, _ in rows if unloaded),
                    frozenset((name, v) for name, unloaded, v in rows if not unloaded and v is not None))


def record(session: Session, name: str, *, unloaded: bool, version_id: int | None) -> None:
    """A load (unloaded=False, the version it loaded) or an unload of model `name` (404 if unknown)."""
    model = service.get_model(session, name)
    row = session.get(RepositoryControl, model.id)
    if row is None:
        row = RepositoryControl(model_id=model.id)
        session.add(row)
    row.unloaded = unloaded
    row.version_id = version_id
    session.commit()
