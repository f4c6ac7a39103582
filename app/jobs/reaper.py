"""Looks for runs whose worker vanished, from the API (an asyncio task) and from each worker (a
thread): with the file-system broker a consumed job is gone from the queue, so a worker killed with
its process group never gets it back from the broker; this is what delivers it again."""

from __future__ import annotations

import asyncio
import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from app.errors import ServiceUnavailable
from app.jobs import service
from app.jobs.broker import Broker
from app.settings import Settings

log = logging.getLogger("dlserve.jobs")


def reap_once(settings: Settings, sessions: sessionmaker[Session], broker: Broker) -> dict[str, str]:
    try:
        with sessions() as session:
            done = service.reap(session, broker, timeout_s=settings.heartbeat_timeout_s,
                                max_attempts=settings.max_attempts)
            session.commit()
    except ServiceUnavailable as e:
        log.warning("lost jobs stay as they are until the broker is back: %s", e.detail)
        return {}
    except Exception:
        log.exception("looking for lost jobs failed; trying again later")
        return {}
    if done:
        log.info("lost jobs: %s", done)
    return done


def reaper_loop(settings: Settings, sessions: sessionmaker[Session], broker: Broker) -> asyncio.Task | None:
    if settings.reaper_interval_s <= 0:
        return None

    async def loop() -> None:
        while True:
            await asyncio.sleep(settings.reaper_interval_s)
            await asyncio.to_thread(reap_once, settings, sessions, broker)

    return asyncio.get_running_loop().create_task(loop(), name="dlserve-reaper")


def reaper_thread(settings: Settings, sessions: sessionmaker[Session], broker: Broker,
                  interval_s: float) -> threading.Thread:
    """Reaps at once (a worker starting after a crash picks up what the crash left), then every interval."""
    stop = threading.Event()

    def run() -> None:
        while True:
            reap_once(settings, sessions, broker)
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=run, name="dlserve-reaper", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
