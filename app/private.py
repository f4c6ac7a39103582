"""The service's state is private to the user it runs as: API key hashes, uploaded data and models,
the broker's messages. Directories are 0700 and files 0600, by a umask for everything the process (and
the workers it starts) writes, and by explicit modes where the main files are first created, so a
process started some other way (tests, `uvicorn app.main:create_app`) creates them private too."""

from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """mkdir -p with the last folder 0700 (an existing one of ours is tightened: older versions made it 0755)."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> None:
    """Creates `path` empty and 0600 unless it exists; an existing file of ours is tightened."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)


def sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        return Path(url[len(prefix):].split("?", 1)[0])
    return None


def make_private(settings: Settings) -> None:
    """At `dlserve serve` and `dlserve worker` start: the umask, then the folders and files that exist."""
    os.umask(0o077)
    private_dir(settings.home)
    private_dir(settings.resolved_artifact_root)
    if settings.uses_file_broker:
        private_dir(settings.broker_dir)
    db = sqlite_path(settings.resolved_database_url)
    if db is not None:
        private_dir(db.parent)
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if f.exists():
                _tighten(f, FILE_MODE)
    key = settings.home / "admin.key"
    if key.exists():
        _tighten(key, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_uid == os.geteuid() and st.st_mode & 0o777 != mode:
        path.chmod(mode)
