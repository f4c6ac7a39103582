"""create_app(): the FastAPI service. Run with `uvicorn app.main:create_app --factory` or `dlserve serve`."""

from __future__ import annotations

import gc
import inspect
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app import dashboard
from app.api import (
    artifacts,
    datasets,
    families,
    health,
    job_events,
    job_metrics,
    jobs,
    keys,
    openapi,
    predict,
    quantisation,
    registry,
    v2,
    web_session,
)
from app.api.hot_path import HotPaths
from app.api.problems import install_error_handlers
from app.auth import Authenticator
from app.db.session import make_engine, make_sessionmaker
from app.inference.manager import ModelManager
from app.inference.metrics import InferenceMetrics
from app.jobs.broker import Broker
from app.jobs.reaper import reaper_loop
from app.metrics import HttpMetrics, multiprocess_folder
from app.middleware import RequestContext
from app.readiness import artifact_store, database
from app.settings import Settings, get_settings
from app.store import open_store
from app.store.sweep import sweeper_loop
from app.uploads import SpoolUnder
from app.web_sessions import WebSessions
from models import register_all

# (method, path prefix, suffix, the setting that bounds the file); a multipart body may carry a little
# more than its file (the form fields, part headers): MULTIPART_SLACK.
UPLOAD_ROUTES = (("POST", "/v1/models/", "/versions", "max_model_bytes"),
                 ("POST", "/v1/datasets", "", "max_upload_bytes"))
MULTIPART_SLACK = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    register_all(settings.families)  # (and the installed entry points) before anything asks which tasks exist
    engine = make_engine(settings.resolved_database_url)
    store = open_store(settings)  # a folder, or an S3 bucket with a local cache (app/store/)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.ensure()
        await app.state.models.start()  # loads and warms in the background; /readyz waits for it
        app.state.broker.ensure()
        reaper = reaper_loop(settings, app.state.sessions, app.state.broker)
        sweeper = sweeper_loop(settings, app.state.sessions, store)
        _freeze_once()
        yield
        if sweeper is not None:
            sweeper.cancel()
        if reaper is not None:
            reaper.cancel()
        await app.state.models.stop()
        engine.dispose()

    app = FastAPI(
        title="dlserve", version="0.1.0", lifespan=lifespan,
        description="Train deep-learning models and serve them with ONNX Runtime.",
        docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,  # /docs: app/dashboard, offline
        **_telemetry(settings),
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.store = store
    app.state.auth = Authenticator(app.state.sessions, settings.admin_key)
    app.state.web_sessions = WebSessions(app.state.sessions, app.state.auth, lifetime_s=settings.session_lifetime_s,
                                         failures_per_minute=settings.signin_failures_per_minute)
    app.state.metrics_registry = CollectorRegistry()
    app.state.metrics_folder = multiprocess_folder(settings)  # None: this process is the only one
    app.state.inference_metrics = InferenceMetrics(app.state.metrics_registry)
    app.state.broker = Broker(settings)
    app.state.models = ModelManager(settings, app.state.sessions, store, app.state.inference_metrics)
    app.state.readiness_checks = {"database": database(engine), "artifacts": artifact_store(store),
                                  "models": app.state.models.status}

    install_error_handlers(app)
    # The hot paths first: FastAPI tries the routers in this order, every route of each (no path overlaps).
    app.include_router(predict.router)
    app.include_router(v2.router)
    app.include_router(health.router)
    app.include_router(registry.router)
    app.include_router(datasets.router)
    app.include_router(job_metrics.router)  # before jobs: /v1/jobs/compare is no job id
    app.include_router(jobs.router)
    app.include_router(job_events.router)
    app.include_router(keys.router)
    app.include_router(web_session.router)
    app.include_router(families.router)
    app.include_router(artifacts.router)
    app.include_router(quantisation.router)
    dashboard.install(app)
    openapi.install(app)  # after every router: it walks the routes when the document is first asked for

    def body_limit(method: str, path: str) -> int:
        for m, prefix, suffix, limit in UPLOAD_ROUTES:
            if method == m and path.startswith(prefix) and path.endswith(suffix):
                return getattr(settings, limit) + MULTIPART_SLACK
        return settings.max_request_bytes

    # Innermost of these three: the inference routes' own lane (app/api/hot_path.py), inside the spooling
    # (multipart predict bodies) and the request context (id, body limits and deadline, metrics).
    app.add_middleware(HotPaths, routes=predict.HOT_ROUTES + v2.HOT_ROUTES)
    app.add_middleware(SpoolUnder, folder=store.staging_dir)
    app.add_middleware(RequestContext, body_limit=body_limit, metrics=HttpMetrics(app.state.metrics_registry),
                       body_timeout_s=settings.body_timeout_s, body_min_rate=settings.body_min_rate_bytes_s,
                       canonical_names=settings.http_parser == "h11")
    logging.getLogger("dlserve").setLevel(logging.INFO)
    return app


def _telemetry(settings: Settings) -> dict:
    """FastAPI's native OpenTelemetry (FastAPI >= 0.160), on only when asked for: left on, it asks for three
    providers on every request, even where none is configured (benchmarks/request_path.py)."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    on = settings.opentelemetry
    return {"telemetry": {"tracing": on, "metrics": on, "logs": on}}


_frozen = False


def _freeze_once() -> None:
    """What start-up made (the app, its routes and schemas, SQLAlchemy, ONNX and numpy modules: about 170,000
    objects) lives as long as the process: out of the collector's sight, a full collection walks only what was
    made since. Walking them all took about 160 ms with the event loop stopped, every few seconds under load:
    the predict path's p99 (BENCHMARKS.md). Collected first, so no garbage is frozen with them; once per
    process, so a process that starts many apps (the tests) freezes only the first one's."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
