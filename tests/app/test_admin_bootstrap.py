"""The local admin key is created once per database, not once per API replica (issue 21): replicas with their
own DLSERVE_HOME starting at once on one database make exactly one, and none once the database has one."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import select

from app.auth import bootstrap_admin_key, create_key
from app.db.session import make_engine, make_sessionmaker
from app.db.tables import ApiKey


def _admin_keys(url: str) -> list[ApiKey]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        rows = s.scalars(select(ApiKey)).all()
    engine.dispose()
    return [r for r in rows if "admin" in r.scopes.split(",")]


def test_replicas_starting_at_once_make_one_admin_key(database_url):
    start = Barrier(4)

    def replica(_: int) -> str | None:
        engine = make_engine(database_url)  # an engine each: a process each, as far as the database can tell
        try:
            with make_sessionmaker(engine)() as s:
                start.wait()
                key = bootstrap_admin_key(s)
                s.commit()
                return key
        finally:
            engine.dispose()

    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(replica, range(4)))
    assert len([k for k in keys if k]) == 1, keys
    assert len(_admin_keys(database_url)) == 1


def test_no_key_is_made_while_one_that_works_exists_and_one_is_once_none_does(database_url):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        create_key(s, ["read", "train"], "a reader")  # not an admin key: the database still needs one
        made = bootstrap_admin_key(s)
        s.commit()
    assert made
    with sessions() as s:
        assert bootstrap_admin_key(s) is None
        for row in s.scalars(select(ApiKey)):
            row.revoked_at = row.created_at  # every key revoked: nobody can administer the database
        s.commit()
    with sessions() as s:
        assert bootstrap_admin_key(s)
        s.commit()
    engine.dispose()
