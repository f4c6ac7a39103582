"""Per model-version Prometheus metrics of the serving engine."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.inference.batcher import BatchStats
from app.metrics import LATENCY_BUCKETS

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry):
        mv = ["model", "version"]
        self.requests = Counter("dlserve_inference_requests", "Inference requests by API and status",
                                mv + ["api", "status"], registry=registry)
        self.item_faults = Counter("dlserve_inference_item_faults", "Inputs of task-level requests answered with a "
                                   "per-item error, by fault kind (shape, value, too_large)", mv + ["kind"],
                                   registry=registry)
        self.latency = Histogram("dlserve_inference_latency_seconds", "End-to-end inference latency",
                                 mv + ["api"], buckets=LATENCY_BUCKETS, registry=registry)
        self.queue_time = Histogram("dlserve_inference_queue_seconds", "Time a request waited for its batch",
                                    mv, buckets=LATENCY_BUCKETS, registry=registry)
        self.compute_time = Histogram("dlserve_inference_compute_seconds", "ONNX Runtime time per batch",
                                      mv, buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("dlserve_inference_batch_size", "Rows per executed batch", mv,
                                    buckets=BATCH_BUCKETS, registry=registry)
        # With several API processes (app/metrics.py) a scrape adds the live processes' gauges up, except
        # the count of loaded versions, which is shown per process (a `pid` label).
        self.queue_depth = Gauge("dlserve_inference_queue_depth", "Requests waiting for a batch", mv,
                                 registry=registry, multiprocess_mode="livesum")
        self.loaded = Gauge("dlserve_models_loaded", "Model versions loaded in this process", registry=registry,
                            multiprocess_mode="liveall")
        self.memory = Gauge("dlserve_model_memory_bytes", "Memory taken by a loaded model version (estimate), "
                            "summed over the API processes", mv, registry=registry, multiprocess_mode="livesum")

        self._request_children: dict[tuple[str, int, str, int], tuple] = {}

    def record(self, model: str, version: int, api: str, status: int, seconds: float) -> None:
        """One request's answer and latency; the label children are looked up once per label set."""
        key = (model, version, api, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (model, str(version))
            children = self._request_children[key] = (self.requests.labels(*labels, api, str(status)),
                                                      self.latency.labels(*labels, api))
        children[0].inc()
        children[1].observe(seconds)

    def batch_stats(self, model: str, version: int) -> BatchStats:
        labels = (model, str(version))
        compute, size = self.compute_time.labels(*labels), self.batch_size.labels(*labels)
        queue, depth = self.queue_time.labels(*labels), self.queue_depth.labels(*labels)

        def on_batch(rows: int, seconds: float) -> None:
            size.observe(rows)
            compute.observe(seconds)

        return BatchStats(on_batch=on_batch, on_queue_time=queue.observe, on_depth=depth.set)

    def forget(self, model: str, version: int) -> None:
        labels = (model, str(version))
        for metric in (self.queue_depth, self.memory):
            try:
                metric.labels(*labels).set(0)  # a process's value file keeps its last value past remove()
                metric.remove(*labels)
            except KeyError:
                pass
