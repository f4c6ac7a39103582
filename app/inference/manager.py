"""Which model versions this process holds, and following the registry's aliases.

At start-up the versions that preloaded aliases point at (production by default) are loaded and
warmed in the background; /readyz waits for them. Other versions load on first request (single
flight). A watcher polls the aliases table, so every API process and replica follows a move made
anywhere within `alias_poll_interval_s`: the new version is loaded and warmed first, traffic
switches, and the old version is drained (its in-flight requests finish) and freed. The V2
repository API's load and unload are kept in the database too (app/inference/repository.py) and
followed the same way. A memory budget, the host's shared among its `workers` processes, evicts the
least recently used versions that no alias and no repository load keeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.db.tables import ModelAlias, ModelVersion, RegisteredModel
from app.errors import Conflict, NotFound, ServiceUnavailable
from app.inference import batching_config, repository, runtime
from app.inference.batcher import Batcher
from app.inference.loaded import LoadedModel, VersionInfo
from app.inference.metrics import InferenceMetrics
from app.registry import service
from app.registry.store import ArtifactStore
from app.settings import Settings
from models import NoSuchFamily, family

log = logging.getLogger("dlserve.inference")

FAILED_RETRY_S = 30.0  # a version that failed to load is not tried again for this long


class ModelManager:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], store: ArtifactStore,
                 metrics: InferenceMetrics):
        self.settings = settings
        self.providers = runtime.check_providers(settings)
        self.sessions = sessions
        self.store = store
        self.metrics = metrics
        self.ready = False
        self._models: dict[tuple[str, int], LoadedModel] = {}
        self._loading: dict[tuple[str, int], asyncio.Task[LoadedModel]] = {}
        self._failed: dict[tuple[str, int], tuple[float, str]] = {}
        self._aliases: dict[tuple[str, str], int] = {}
        self._unloaded: frozenset[str] = frozenset()  # the repository API's state, from the database
        self._requested: frozenset[tuple[str, int]] = frozenset()
        self._controls_changed = 0  # counts loads and unloads here, so a poll read before one does not undo it
        self._load_lock = asyncio.Lock()
        self._refresh = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn(self._start())

    async def _start(self) -> None:
        try:
            await self._sync()
        except Exception:
            log.exception("loading the aliased model versions at start-up failed; the watcher retries")
        self.ready = True
        self._spawn(self._watch())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for lm in list(self._models.values()):
            await self._free(lm, drain_timeout=5.0)
        self._models.clear()

    def notify(self) -> None:
        """Something changed in the registry (an alias moved here): sync now rather than at the next poll.
        Safe to call from any thread (registry routes run in the threadpool)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._refresh.set)

    def status(self) -> str:
        if not self.ready:
            raise RuntimeError(f"loading and warming the aliased model versions ({len(self._loading)} in progress)")
        failed = [f"{n} v{v}: {why}" for (n, v), (_, why) in self._failed.items()]
        return f"ok ({len(self._models)} loaded" + (f"; failed to load: {'; '.join(failed)})" if failed else ")")

    # -- requests ----------------------------------------------------------------------------------
    @asynccontextmanager
    async def use(self, name: str, version: int | None = None, alias: str | None = None) -> AsyncIterator[LoadedModel]:
        """The loaded version a request means, held so it cannot be freed while the request uses it."""
        lm = await self.get(name, version, alias)
        lm.acquire()
        try:
            yield lm
        finally:
            lm.release()

    async def get(self, name: str, version: int | None = None, alias: str | None = None) -> LoadedModel:
        if name in self._unloaded:
            raise Conflict(f"model {name!r} was unloaded through the repository API; "
                           f"load it with POST /v2/repository/models/{name}/load")
        if version is None:
            version = self._aliases.get((name, alias or service.DEFAULT_ALIAS))
        if version is None:
            info = await asyncio.to_thread(self._read_version, name, None, alias)
            version = info.version
        lm = self._models.get((name, version))
        if lm is not None:
            return lm
        return await self._wait_loaded(name, version)

    async def _wait_loaded(self, name: str, version: int, info: VersionInfo | None = None) -> LoadedModel:
        key = (name, version)
        failed = self._failed.get(key)
        if failed and time.monotonic() - failed[0] < FAILED_RETRY_S:
            raise ServiceUnavailable(f"model {name!r} version {version} failed to load: {failed[1]}",
                                     retry_after=FAILED_RETRY_S)
        task = self._ensure_loading(key, info)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.settings.load_wait_s)
        except TimeoutError:
            raise ServiceUnavailable(f"model {name!r} version {version} is loading; retry shortly",
                                     retry_after=2) from None
        except ServiceUnavailable:
            raise
        except Exception as e:
            if isinstance(e, (NotFound, Conflict, SQLAlchemyError)):
                raise  # a database error is the error handlers' to answer: its text is never shown
            why = self._failed.get(key, (0.0, "see the server's log"))[1]  # the text _load made safe to show
            raise ServiceUnavailable(f"model {name!r} version {version} failed to load: {why}",
                                     retry_after=FAILED_RETRY_S) from e

    def _ensure_loading(self, key: tuple[str, int], info: VersionInfo | None) -> asyncio.Task[LoadedModel]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key, info))
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        return task

    # -- repository control (Open Inference Protocol) ----------------------------------------------
    async def load(self, name: str, version: int | None = None) -> LoadedModel:
        info = await asyncio.to_thread(self._read_version, name, version, None, True)
        await asyncio.to_thread(self._record, name, False, info.id)
        self._controls_changed += 1
        self._unloaded = self._unloaded - {name}
        self._requested = frozenset({k for k in self._requested if k[0] != name} | {info.key})
        self._failed.pop(info.key, None)
        return self._models.get(info.key) or await self._wait_loaded(name, info.version, info)

    async def unload(self, name: str) -> int:
        await asyncio.to_thread(self._record, name, True, None)  # 404 for unknown names
        self._controls_changed += 1
        self._unloaded = self._unloaded | {name}
        self._requested = frozenset(k for k in self._requested if k[0] != name)
        return self._free_unloaded()

    def _free_unloaded(self) -> int:
        victims = [lm for key, lm in self._models.items() if key[0] in self._unloaded]
        for lm in victims:
            self._models.pop(lm.info.key, None)
            self._spawn(self._free(lm))
        return len(victims)

    def _record(self, name: str, unloaded: bool, version_id: int | None) -> None:
        with self.sessions() as s:
            repository.record(s, name, unloaded=unloaded, version_id=version_id)

    def loaded(self, name: str, version: int) -> LoadedModel | None:
        return self._models.get((name, version))

    def state(self, name: str, version: int) -> tuple[str, str]:
        key = (name, version)
        if key in self._models:
            return "READY", ""
        if key in self._loading:
            return "LOADING", ""
        if key in self._failed:
            return "UNAVAILABLE", self._failed[key][1]
        if name in self._unloaded:
            return "UNAVAILABLE", "unloaded"
        return "UNAVAILABLE", "not loaded; loads on first request"

    async def default_version(self, name: str) -> VersionInfo:
        """The version a V2 request without a version means: the production alias, else the latest."""
        if name not in self._unloaded:  # hot path: the aliased version is loaded, no database round trip
            lm = self._models.get((name, self._aliases.get((name, service.DEFAULT_ALIAS), -1)))
            if lm is not None:
                return lm.info
        return await asyncio.to_thread(self._read_version, name, None, None, True)

    async def all_versions(self) -> list[tuple[str, int]]:
        def read() -> list[tuple[str, int]]:
            with self.sessions() as s:
                return [tuple(r) for r in s.execute(
                    select(RegisteredModel.name, ModelVersion.version).join(ModelVersion)
                    .order_by(RegisteredModel.name, ModelVersion.version))]

        return await asyncio.to_thread(read)

    async def version_info(self, name: str, version: int) -> VersionInfo:
        lm = self._models.get((name, version))
        return lm.info if lm else await asyncio.to_thread(self._read_version, name, version, None)

    # -- loading -----------------------------------------------------------------------------------
    async def _load(self, key: tuple[str, int], info: VersionInfo | None) -> LoadedModel:
        if info is None:
            info = await asyncio.to_thread(self._read_version, key[0], key[1], None)
        async with self._load_lock:  # one at a time, so the memory reading belongs to this version
            try:
                cfg = batching_config.resolve(info.metadata, self.settings)  # a version stored before the check
                lm = await asyncio.to_thread(self._build, info, cfg.max_batch)
            except Exception as e:
                # shown to clients (503 detail, V2 repository index): ONNX Runtime names the file it read
                why = runtime_error_text(e).replace(str(self.store.root), "<artifacts>")
                self._failed[key] = (time.monotonic(), why)
                log.error("could not load %s v%s: %s", key[0], key[1], e)
                raise
        self._failed.pop(key, None)
        lm.batcher = Batcher(
            f"{info.name}-{info.version}", lm.run, max_batch=cfg.max_batch, max_delay_s=cfg.max_delay_s,
            max_queue=self.settings.max_queue_size, batchable=runtime.batchable(info.signature),
            inline_s=self.settings.inline_run_us / 1e6,
            wait_fraction=self.settings.batch_wait_fraction,
            stats=self.metrics.batch_stats(info.name, info.version),
            pad=lm.family.batch_padding(lm.spec) if lm.spec is not None and family(info.task).batch_padding
            else None,
        )
        self._models[key] = lm
        self.metrics.loaded.set(len(self._models))
        self.metrics.memory.labels(info.name, str(info.version)).set(lm.memory_bytes)
        log.info("loaded %s v%s (%.1f MB)", info.name, info.version, lm.memory_bytes / 2**20)
        await self._enforce_budget(keep=key)
        return lm

    def _build(self, info: VersionInfo, max_batch: int) -> LoadedModel:
        before = runtime.rss_bytes()
        session = runtime.create_session(info.path, self.settings, self.providers)
        spec, spec_error, runner = None, None, None
        try:
            contract = family(info.task)
        except NoSuchFamily as e:  # a version of a family this server does not register (any more): V2 only
            contract, spec_error = None, str(e)
        family_serving = contract.serving if contract is not None else None
        # An encoder-decoder family (multi_file) serves from several files in the version's folder: the
        # encoder (model.onnx), the decoder step and tokenizers; its batches run a whole beam search.
        multi_file = contract is not None and contract.multi_file
        if family_serving is not None:
            try:
                spec = family_serving.make_spec(info.signature, info.metadata, self.settings.max_image_pixels,
                                        **({"folder": info.path.parent} if multi_file else {}))
            except (ValueError, KeyError, TypeError, OSError) as e:
                spec_error = str(e)
        if multi_file and spec is not None:
            runner = family_serving.make_runner(session, info.path.parent, spec,
                                        lambda path: runtime.create_session(path, self.settings, self.providers))
        elif "graphs" in info.signature:
            raise RuntimeError(f"its files cannot be served: {spec_error}")
        lm = LoadedModel(info, session, family_serving, spec, spec_error, 0, runner=runner)
        batch = max_batch if runtime.batchable(info.signature) else 1  # warm the largest batch it will run
        warmup = family_serving.warmup_feeds if spec is not None and contract.warmup_feeds else None
        for rows in sorted({1, batch}):
            try:
                lm.run(warmup(spec, rows) if warmup else runtime.warmup_feeds(info.signature, rows))
            except Exception as e:  # zeros are not valid input for every model; it can still serve
                log.warning("warm-up of %s v%s with %d row(s) failed: %s", info.name, info.version, rows, e)
                break
        lm.memory_bytes = max(runtime.rss_bytes() - before, info.path.stat().st_size)
        return lm

    async def _enforce_budget(self, keep: tuple[str, int]) -> None:
        # The budget is the host's: `dlserve serve --workers N` gives each process an Nth of it.
        budget = int(self.settings.model_memory_budget_mb * 2**20 / self.settings.workers)
        if budget <= 0:
            return
        pinned = {(name, v) for (name, _alias), v in self._aliases.items()} | set(self._requested) | {keep}
        total = sum(lm.memory_bytes for lm in self._models.values())
        for lm in sorted(self._models.values(), key=lambda m: m.last_used):
            if total <= budget:
                break
            if lm.info.key in pinned or lm.users:
                continue
            log.info("evicting %s v%s (memory budget %.1f MB)", lm.name, lm.version, budget / 2**20)
            self._models.pop(lm.info.key, None)
            total -= lm.memory_bytes
            self._spawn(self._free(lm))

    async def _free(self, lm: LoadedModel, drain_timeout: float = 60.0) -> None:
        if self._models.get(lm.info.key) is lm:
            del self._models[lm.info.key]
        try:
            await asyncio.wait_for(lm.released.wait(), drain_timeout)
        except TimeoutError:
            log.warning("%s v%s still in use after %.0fs; freeing it anyway", lm.name, lm.version, drain_timeout)
        if lm.batcher is not None:
            await lm.batcher.drain(drain_timeout)
            await lm.batcher.close()
        self.metrics.forget(lm.name, lm.version)
        self.metrics.loaded.set(len(self._models))
        log.info("unloaded %s v%s", lm.name, lm.version)

    # -- following the registry --------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._refresh.wait(), self.settings.alias_poll_interval_s)
            except TimeoutError:
                pass
            self._refresh.clear()
            try:
                await self._sync()
            except Exception:
                log.exception("following the registry failed; serving what is loaded and trying again")

    async def _sync(self) -> None:
        checked = {lm.info.id for lm in self._models.values()}
        changed = self._controls_changed
        aliases, existing, controls = await asyncio.to_thread(self._read_aliases, list(checked))
        if changed == self._controls_changed:  # else a load or unload here came after the read: it stands
            self._unloaded, self._requested = controls.unloaded, controls.requested
            self._free_unloaded()
        for name, version in self._requested:
            if (name, version) in self._models or (name, version) in self._failed:
                continue  # a version that failed to load was logged; it is tried again on request
            try:
                await self._wait_loaded(name, version)
            except Exception as e:
                log.error("a repository load asked for %s v%s, not loaded here (yet): %s", name, version, e)
        new = dict(aliases)
        for (name, alias), version in aliases.items():
            key = (name, version)
            if not self._preloads(alias) or key in self._models or name in self._unloaded:
                continue
            try:
                await self._wait_loaded(name, version)
            except Exception as e:
                # Keep traffic on the version that works; the alias follows once this one loads.
                old = self._aliases.get((name, alias))
                log.error("alias %s/%s moved to v%s, which does not load (%s); still serving v%s",
                          name, alias, version, e, old)
                if old is None:
                    new.pop((name, alias))
                else:
                    new[(name, alias)] = old
        before = {(n, v) for (n, _), v in self._aliases.items()}
        self._aliases = new
        after = {(n, v) for (n, _), v in new.items()}
        for key, lm in list(self._models.items()):
            deleted = lm.info.id in checked and lm.info.id not in existing
            if deleted or (key in before and key not in after):
                self._models.pop(key)
                self._spawn(self._free(lm))

    def _preloads(self, alias: str) -> bool:
        return "*" in self.settings.preload_aliases or alias in self.settings.preload_aliases

    def _read_aliases(self, loaded_ids: list[int]) -> tuple[dict[tuple[str, str], int], set[int], repository.Controls]:
        with self.sessions() as s:
            rows = s.execute(
                select(RegisteredModel.name, ModelAlias.alias, ModelVersion.version)
                .join(ModelAlias, ModelAlias.model_id == RegisteredModel.id)
                .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
            ).all()
            existing = set(s.scalars(select(ModelVersion.id).where(ModelVersion.id.in_(loaded_ids)))) \
                if loaded_ids else set()
            controls = repository.read(s)
        return {(n, a): v for n, a, v in rows}, existing, controls

    def _read_version(self, name: str, version: int | None, alias: str | None,
                      latest_if_no_alias: bool = False) -> VersionInfo:
        with self.sessions() as s:
            if version is None and alias is None and latest_if_no_alias:
                model = service.get_model(s, name)
                row = next((a.version for a in model.aliases if a.alias == service.DEFAULT_ALIAS), None)
                if row is None:
                    if not model.versions:
                        raise NotFound(f"model {name!r} has no versions")
                    row = model.versions[-1]
            else:
                row = service.resolve(s, name, version, alias)
            return VersionInfo(row.id, name, row.version, row.task, row.signature, row.meta or {}, row.sha256,
                               self.store.model_file(row.artifact_uri, row.sha256))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def runtime_error_text(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
