"""The [serving] section of plugins.toml and its per-endpoint tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml.config import Secret, setting
from forgeml.recsys.settings import RecommenderSettings, check_recommenders


@dataclass
class BatchingSettings:
    """Dynamic batching of one endpoint's concurrent requests."""

    enabled: bool = setting(True, "Group concurrent requests into one predict call.")
    max_batch_size: int = setting(64, "Most rows in one predict call.")
    max_delay_ms: float = setting(0.0, "How long the first request of a batch waits for more (0: take what is queued).")
    inline_max_ms: float = setting(2.0, "Models whose one-row predict is faster than this run on the event loop "
                                        "instead of a thread (0: always a thread).")


@dataclass
class CanarySettings:
    """A canary ramp for one endpoint and the guardrails that roll it back."""

    model: str = setting("", "Canary model URI, e.g. \"fraud@candidate\"; empty: no canary.")
    steps: list[float] = setting([0.05, 0.2, 1.0], "Share of traffic at each step of the ramp.")
    interval_s: float = setting(300.0, "Seconds each step lasts.")
    max_error_rate: float = setting(0.05, "Roll back when the canary's error rate exceeds this.", low=0, high=1)
    max_p99_ms: float = setting(250.0, "Roll back when the canary's p99 latency exceeds this many ms.")
    min_requests: int = setting(20, "Canary requests observed before a guardrail may fire.")


@dataclass
class FallbackSettings:
    """What answers when the model or the online store fails ([serving.endpoints.NAME.fallback])."""

    model: str = setting("", "Backup model URI (name@version or name@alias) answering when the primary fails.")
    constant: float | None = setting(None, "Last link: this value answers every row when both models fail.")
    feature_defaults: dict[str, float] | None = setting(
        None, "Value per online feature used when the online store fails, times out or its breaker is open.")
    lookup_deadline_ms: float = setting(0.0, "Give up on the online store after this many ms (0: no deadline).")
    breaker_failures: int = setting(5, "Consecutive failures that open a circuit breaker (model or store).")
    breaker_cooldown_s: float = setting(10.0, "Seconds an open breaker waits before one probe call.")
    breaker_latency_ms: float = setting(0.0, "Also open a breaker when the breaker_quantile of its last "
                                             "breaker_window calls is slower than this (0: failures only).")
    breaker_quantile: float = setting(0.99, "Quantile of recent call durations compared with breaker_latency_ms.",
                                      low=0, high=1)
    breaker_window: int = setting(50, "Calls in the latency window of a breaker.")
    cache_ttl_s: float = setting(0.0, "Answer from each entity's last prediction when it is at most this old "
                                      "(0: no cache link).")
    cache_size: int = setting(100_000, "Most entities whose last prediction is kept (least recent dropped).")
    rule: str = setting("", "An expression over the request's fields answering each row, e.g. "
                            "\"0.9 if amount > 1000 else 0.1\" (before the constant).")
    training_defaults: bool = setting(False, "Fill a failed lookup from the training mean (mode for text) "
                                             "stored with the model version, under feature_defaults.")
    budget_ms: float = setting(0.0, "Latency budget of a request (X-Budget-Ms may lower it): past it the "
                                    "fallback answers, or a 503 (0: no budget).")
    max_queue: int = setting(0, "Most requests in flight for this endpoint; more are shed at once (0: no limit).")
    shed_latency_ms: float = setting(0.0, "Latency target: slower answers shrink the requests admitted at once, "
                                          "faster ones grow it back (0: off).")


@dataclass
class EndpointSettings:
    """One served endpoint: its model, challengers and batching ([serving.endpoints.NAME])."""

    model: str = setting("", "Primary model URI: name@production, name@alias or name@version.")
    shadow: str = setting("", "Model URI that gets a copy of every request; its predictions are only logged.")
    ab_model: str = setting("", "Model URI of arm B of an A/B split; empty: no split.")
    ab_fraction: float = setting(0.5, "Share of routing keys sent to arm B.", low=0, high=1)
    key_field: str = setting("", "Request field hashed for A/B and canary routing (default: the first entity key).")
    max_rows: int | None = setting(None, "Most rows in one predict request to this endpoint (413 above; "
                                         "0: no limit; unset: [serving].max_rows).", low=0)
    batching: BatchingSettings = setting(default_factory=BatchingSettings, doc="Dynamic batching.")
    canary: CanarySettings = setting(default_factory=CanarySettings, doc="Canary ramp.")
    fallback: FallbackSettings = setting(default_factory=FallbackSettings, doc="Fallback chain and breakers.")


@dataclass
class AutoscaleSettings:
    """Worker processes added and removed on load ([serving.autoscale]; `forgeml serve --workers auto`)."""

    enabled: bool = setting(False, "Scale the workers between min_workers and max_workers (as --workers auto).")
    min_workers: int = setting(1, "Fewest worker processes.", low=1)
    max_workers: int = setting(4, "Most worker processes.", low=1)
    target_in_flight: float = setting(4.0, "Requests in flight per worker above which a worker is added.")
    target_p99_ms: float = setting(0.0, "Add a worker while the p99 of recent answers exceeds this (0: off).", low=0)
    gpu_util_pct: float = setting(0.0, "Add a worker while the busiest GPU is more utilized than this "
                                       "(0: off; needs a GPU inventory that reports utilization).", low=0, high=100)
    up_cooldown_s: float = setting(5.0, "Seconds after a change before a worker may be added.", low=0)
    down_cooldown_s: float = setting(30.0, "Seconds after a change before a worker may be removed.", low=0)


@dataclass
class ServingSettings:
    """The model server started by `forgeml serve`."""

    host: str = setting("127.0.0.1", "Address to listen on; loopback unless you mean to expose it.")
    port: int = setting(8080, "TCP port.")
    workers: int = setting(1, "Server processes (see [serving.autoscale] to scale them on load).")
    balance: bool = setting(True, "With several workers: the parent process accepts each connection and hands it "
                                  "to the worker holding the fewest, so a client's keep-alive connections spread "
                                  "evenly; false: the workers share the port and the kernel picks (uvicorn's mode).")
    autoscale: AutoscaleSettings = setting(default_factory=AutoscaleSettings, doc="Autoscaling of the workers.")
    token: Secret | None = setting(None, "Bearer token callers must send, e.g. { env = \"FORGEML_SERVE_TOKEN\" }.")
    principals: bool = setting(False, "Accept `forgeml auth` tokens instead of one shared token: roles and "
                                      "scopes decide who may predict with which model.")
    rate_per_s: float = setting(0.0, "With principals: requests per second each token may make (0: no limit).")
    burst: float = setting(0.0, "With principals: requests a token may make at once (0: as many as rate_per_s).")
    max_body_bytes: int = setting(1_048_576, "Largest request body accepted (413 above).")
    max_rows: int = setting(10_000, "Most rows in one predict request, for endpoints without their own "
                                    "max_rows (413 above; 0: no limit).", low=0)
    poll_interval_s: float = setting(2.0, "How often the registry is checked for a new stage/alias target.")
    log_predictions: bool = setting(True, "Append every prediction to the Parquet prediction log.")
    log_explanations: bool = setting(False, "Explain every prediction and log each feature's attribution "
                                            "(columns _attr_<feature>); costs an explanation per request.")
    predlog_flush_s: float = setting(1.0, "How often the prediction log is flushed to Parquet.")
    predict_threads: int = setting(4, "Threads running predict calls side by side when batching is off.")
    recommend_concurrency: int = setting(1, "Recommendations one server process computes at once; later requests "
                                            "wait in arrival order (more workers, not more of these, use more "
                                            "cores: they share one interpreter lock).", low=1)
    recommend_on_event_loop: bool | None = setting(
        None, "Compute recommendations on the server's event loop instead of a compute thread: no hand-off "
              "between threads, but the process's other requests wait meanwhile (unset: when it serves only "
              "recommenders and recommend_concurrency is 1).")
    # None rather than {} so the default plugins.toml leaves room for [serving.endpoints.NAME] tables
    endpoints: dict[str, EndpointSettings] | None = setting(
        None, "Add one [serving.endpoints.NAME] table per endpoint (model, shadow, ab_model, batching, canary).")
    recommenders: dict[str, RecommenderSettings] | None = setting(
        None, "Add one [serving.recommenders.NAME] table per recommender (sources, model, rerank), served at "
              "POST /v1/recommenders/NAME/recommend.")

    def check_providers(self, host: Any, prefix: str = "") -> None:
        """Check that every recommender's sources and rules are registered plugins with valid settings."""
        check_recommenders(host, self.recommenders, prefix)
