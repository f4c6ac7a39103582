"""A job's log in the database (run_logs): written by its worker in chunks (workers/runlog.py), read by any API
process. Bounded: the log keeps its head (the first half of job_log_max_bytes: what the run started with)
and its tail (the last half: how it is going or how it ended); chunks between them are deleted as the tail
moves on, and a reader sees "[... N bytes dropped ...]" where they were. Offsets are bytes of UTF-8 in the
whole log, dropped parts included, so a reader continues with ?offset= from where it stopped."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.tables import RunLogChunk

CHUNK_BYTES = 64 * 1024  # one row at most: pruning then frees the log in steps of this size


def dropped_marker(n: int) -> str:
    return f"[... {n} bytes dropped ...]\n"


def end_offset(session: Session, run_id: str) -> int:
    """Where the next chunk of the run's log starts (0 for a log not started)."""
    return session.scalar(select(func.max(RunLogChunk.offset + RunLogChunk.size))
                          .where(RunLogChunk.run_id == run_id)) or 0


def append(session: Session, run_id: str, start: int, text: str, max_bytes: int) -> int:
    """Adds `text` at `start` (after any gap the writer left for what it dropped) and deletes what falls
    between the head and the tail; returns the offset after it. The caller commits."""
    offset = start
    for piece in _pieces(text):
        size = len(piece.encode())
        session.add(RunLogChunk(run_id=run_id, offset=offset, size=size, text=piece))
        offset += size
    session.flush()
    head_end, tail_start = max_bytes // 2, offset - max_bytes // 2
    if tail_start > head_end:
        session.execute(delete(RunLogChunk).where(RunLogChunk.run_id == run_id, RunLogChunk.offset >= head_end,
                                                  RunLogChunk.offset + RunLogChunk.size <= tail_start))
    return offset


def _pieces(text: str) -> list[str]:
    out, piece, size = [], [], 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode())
        if piece and size + n > CHUNK_BYTES:
            out.append("".join(piece))
            piece, size = [], 0
        piece.append(line)
        size += n
    if piece:
        out.append("".join(piece))
    return out


@dataclass
class LogPart:
    text: str
    next_offset: int  # where to continue reading


def read(session: Session, run_id: str, offset: int = 0, limit_bytes: int | None = None) -> LogPart:
    """The log from `offset` on (gaps shown by a marker), up to about `limit_bytes` of stored text."""
    rows = session.execute(select(RunLogChunk.offset, RunLogChunk.size, RunLogChunk.text)
                           .where(RunLogChunk.run_id == run_id, RunLogChunk.offset + RunLogChunk.size > offset)
                           .order_by(RunLogChunk.offset))
    parts: list[str] = []
    at, taken = offset, 0
    for start, size, text in rows:
        if limit_bytes is not None and taken and taken + size > limit_bytes:
            break
        if start > at:
            parts.append(dropped_marker(start - at))
        elif start < at:  # the reader stopped inside this chunk
            text = text.encode()[at - start:].decode(errors="ignore")
        parts.append(text)
        at, taken = start + size, taken + size
    return LogPart("".join(parts), at)
