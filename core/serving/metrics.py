"""Prometheus metrics of one server: requests, errors, latency and batch sizes per model and version."""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    """The metric families of one app, in their own registry so several apps can share a process."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("forgeml_serving_requests", "Prediction requests answered.",
                                ["model", "version", "arm", "status"], registry=self.registry)
        self.errors = Counter("forgeml_serving_errors", "Prediction requests that failed, by kind.",
                              ["model", "version", "kind"], registry=self.registry)
        self.latency = Histogram("forgeml_serving_request_latency_seconds",
                                 "Time from request received to response ready.", ["model", "version", "arm"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("forgeml_serving_batch_size", "Rows per predict call.",
                                    ["model", "version"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.rows = Counter("forgeml_serving_rows", "Rows predicted.", ["model", "version", "arm"],
                            registry=self.registry)
        self.loaded_version = Gauge("forgeml_serving_model_version", "Version loaded per endpoint and arm.",
                                    ["model", "arm"], registry=self.registry)
        self.swaps = Counter("forgeml_serving_model_swaps", "Hot swaps of a loaded model.", ["model", "arm"],
                             registry=self.registry)
        self.canary_fraction = Gauge("forgeml_serving_canary_fraction", "Share of traffic the canary gets.",
                                     ["model"], registry=self.registry)
        self.canary_rollbacks = Counter("forgeml_serving_canary_rollbacks", "Canaries rolled back by a guardrail.",
                                        ["model"], registry=self.registry)
        self.rejected = Counter("forgeml_serving_rejected_requests", "Requests refused before reaching a model.",
                                ["reason"], registry=self.registry)
        self.log_dropped = Gauge("forgeml_serving_predlog_dropped_rows",
                                 "Prediction-log rows dropped because the writer fell behind.", registry=self.registry)
        self.log_errors = Gauge("forgeml_serving_predlog_write_errors",
                                "Prediction-log writes that failed (their rows are lost; see the server log).",
                                registry=self.registry)
        self.fallbacks = Counter("forgeml_serving_fallbacks", "Answers given by a fallback link, and why.",
                                 ["model", "link", "reason"], registry=self.registry)
        self.feature_defaults = Counter("forgeml_serving_feature_defaults",
                                        "Lookups answered with default feature values, and why.",
                                        ["model", "reason"], registry=self.registry)
        self.circuit_state = Gauge("forgeml_serving_circuit_state",
                                   "Circuit breaker state per dependency (0 closed, 1 half-open, 2 open).",
                                   ["model", "dependency"], registry=self.registry)
        self.recsys_requests = Counter("forgeml_recsys_requests", "Recommendation requests answered, by outcome.",
                                       ["recommender", "status"], registry=self.registry)
        self.recsys_stage_latency = Histogram("forgeml_recsys_stage_latency_seconds",
                                              "Time per stage (retrieve, rank, rerank, total) of a recommendation.",
                                              ["recommender", "stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.recsys_sources = Counter("forgeml_recsys_source_results", "Retrieval source outcomes (ok, timeout, error).",
                                      ["recommender", "source", "status"], registry=self.registry)
        self.recsys_fallbacks = Counter("forgeml_recsys_fallbacks", "Recommendations answered by the fallback source.",
                                        ["recommender"], registry=self.registry)
        self.recsys_queued = Gauge("forgeml_recsys_queued", "Recommendation requests waiting for a compute slot "
                                   "([serving] recommend_concurrency).", ["recommender"], registry=self.registry)
        self.in_flight = Gauge("forgeml_serving_in_flight", "Requests admitted and not yet answered, per endpoint.",
                               ["model"], registry=self.registry)
        self.admission_limit = Gauge("forgeml_serving_admission_limit",
                                     "Requests an endpoint admits at once now (adapts to its latency target).",
                                     ["model"], registry=self.registry)
        self.shed = Counter("forgeml_serving_shed", "Requests refused at admission (answered by a cheap link or 503).",
                            ["model", "reason"], registry=self.registry)
        self.workers = Gauge("forgeml_serving_workers", "Worker processes the autoscaler keeps now.",
                             registry=self.registry)
        self.workers_bounds = Gauge("forgeml_serving_workers_bound", "The autoscaler's fewest and most workers.",
                                    ["bound"], registry=self.registry)
        self._children: dict[tuple, Any] = {}

    def child(self, family: Any, *labels: str) -> Any:
        """Return a labelled child, cached: ``labels()`` costs more than the observation itself."""
        key = (id(family), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = family.labels(*labels)
        return found

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
