"""`forgeml quickstart recsys`: a synthetic shop, both models trained, the recommender served and asked, on a CPU.

Steps: create the workspace; generate the catalogue and interaction log and push the features and
candidate lists; train the ranking model; train the two-tower retrieval model and publish its
embedding tables; evaluate the pipeline offline against the popularity list; serve the recommender
over HTTP on loopback and ask it for a few users.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ForgeError

DEFAULT_DIRECTORY = "forgeml-recsys-quickstart"
SIZES = {"default": (20_000, 3_000, 40), "small": (3_000, 500, 15)}  # items, users, categories


@dataclass
class RecsysSummary:
    """What the recsys quickstart did: per-step reports, offline metrics and served recommendations."""

    directory: str
    scale: str
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    served: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {"directory": self.directory, "scale": self.scale, "elapsed_s": self.elapsed_s,
                "steps": [{"title": t, "seconds": round(s, 2), "message": m} for t, s, m in self.steps],
                "metrics": self.metrics, "served": self.served}

    def report(self) -> list[str]:
        """Return the lines printed at the end."""
        lines = [f"{name:<12} " + "  ".join(f"{k} {v:.3f}" for k, v in sorted(m.items()) if k != "users")
                 for name, m in self.metrics.items()]
        for answer in self.served:
            items = ", ".join(f"{i['item']} ({i['source']})" for i in answer["items"][:5])
            lines.append(f"user {answer['user']}: {items}  [{answer['stages_ms']['total']:.1f} ms]")
        return lines


class _Run:
    """The state the steps share."""

    def __init__(self, root: Path, scale: str):
        self.root = root
        self.scale = scale
        self.shop: Any = None
        self.ws: Any = None


def _workspace(run: _Run) -> str:
    from forgeml.quickstart.layout import MARKER
    from forgeml.workspace import Workspace

    Workspace.init(run.root).close()
    (run.root / MARKER).write_text(json.dumps({"scale": f"recsys-{run.scale}", "created_at": time.time()}))
    return str(run.root)


def _data(run: _Run) -> str:
    from forgeml.features import store_for
    from forgeml.recsys import synthetic as syn

    items, users, categories = SIZES[run.scale]
    run.shop = syn.make_shop(items, users, n_categories=categories, per_user=20, dim=16)
    store = store_for(run.ws)
    syn.define_views(store, 16)
    syn.push_shop(store, run.shop)
    return (f"{items:,} items in {categories} categories, {users:,} users, {run.shop.train.num_rows:,} interactions "
            f"({run.shop.test.num_rows:,} held out); features, co-occurrence, popularity and category lists online")


def _ranker(run: _Run) -> str:
    from forgeml.recsys import synthetic as syn

    mv = syn.train_ranker(run.shop, workspace=run.ws)
    return f"{mv.name} v{mv.version} (gradient boosting over user, item and context features) in production"


def _two_tower(run: _Run) -> str:
    from forgeml.recsys import registered_table
    from forgeml.recsys import synthetic as syn

    mv, _ = syn.train_retrieval(run.shop, dim=32, epochs=2, workspace=run.ws)
    table = registered_table(f"{mv.name}@production", run.ws)
    with (run.root / "plugins.toml").open("a") as f:
        f.write(syn.recommender_toml("shop", budget_ms=200.0, retrieval=mv.name, every_source=True))
    from forgeml.workspace import Workspace, set_current

    run.ws = Workspace(run.root)
    set_current(run.ws)
    return f"{mv.name} v{mv.version}: item table {table.table} and its user table, verified and promoted"


def _evaluate(run: _Run, summary: RecsysSummary) -> str:
    from forgeml.recsys import Recommender, evaluate

    shop = run.shop
    held = shop.test.to_pandas().groupby("user")["item"].apply(set).to_dict()
    users = sorted(held)[:200]
    rec = Recommender("shop", run.ws.config.section("serving").recommenders["shop"], run.ws)
    rec.load()
    try:
        ranked = {u: [c.item for c in rec.recommend(u, n=10, context={"hour": 12}).items] for u in users}
        popularity = rec.sources[rec.fallback_source]
        popular = {u: [item for item, _ in popularity.retrieve(rec.query(u, n=10), 10)] for u in users}
    finally:
        rec.close()
    category = dict(zip(shop.items.column("item_id").to_pylist(), shop.items.column("category").to_pylist(),
                        strict=True))
    relevant = {u: held[u] for u in users}
    for name, lists in (("pipeline", ranked), ("popularity", popular)):
        summary.metrics[name] = evaluate(lists, relevant, k=10, catalogue_size=shop.items.num_rows, category=category)
    p, b = summary.metrics["pipeline"], summary.metrics["popularity"]
    return f"NDCG@10 {p['ndcg@10']:.3f} vs popularity {b['ndcg@10']:.3f}; recall@10 {p['recall@10']:.3f} " \
           f"vs {b['recall@10']:.3f} on {len(users)} users' held-out interactions"


def _serve(run: _Run, summary: RecsysSummary) -> str:
    import threading

    import httpx
    import uvicorn

    from forgeml.serving import ServerOptions, build_app

    app = build_app([], ServerOptions(), run.ws)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not (server.started and server.servers):
            if time.monotonic() > deadline or not thread.is_alive():
                raise ForgeError("the recommender server did not start")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            while http.get("/readyz").status_code != 200:
                if time.monotonic() > deadline:
                    raise ForgeError(f"the recommender is not ready: {http.get('/readyz').text}")
                time.sleep(0.1)
            for user in (1, 2, 3):
                res = http.post("/v1/recommenders/shop/recommend", json={"user": user, "n": 10,
                                                                       "context": {"hour": 18}})
                if res.status_code != 200:
                    raise ForgeError(f"POST /v1/recommenders/shop/recommend answered {res.status_code}: {res.text}")
                summary.served.append(res.json())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return "POST /v1/recommenders/shop/recommend answered users 1, 2 and 3 (start it yourself with `forgeml serve`)"


def run_recsys_quickstart(directory: str | Path = DEFAULT_DIRECTORY, scale: str = "default",
                          progress: Callable[[Any], None] | None = None, force: bool = False) -> RecsysSummary:
    """Build and serve the synthetic shop's recommender in a new workspace; return what each step did."""
    from forgeml.errors import unknown_name
    from forgeml.quickstart.layout import inside, prepare_directory
    from forgeml.quickstart.runner import QuickstartStepError, StepEvent

    if scale not in SIZES:
        raise unknown_name("quickstart scale", scale, SIZES)
    started = time.perf_counter()
    root = prepare_directory(directory, force)
    run = _Run(root, scale)
    summary = RecsysSummary(str(root), scale)
    emit = progress or (lambda event: None)
    steps: list[tuple[str, str, Callable[[], str]]] = [
        ("data", "Generate the shop and push its features", lambda: _data(run)),
        ("ranker", "Train the ranking model", lambda: _ranker(run)),
        ("two_tower", "Train the two-tower model and publish its tables", lambda: _two_tower(run)),
        ("evaluate", "Evaluate offline", lambda: _evaluate(run, summary)),
        ("serve", "Serve the recommender and ask it", lambda: _serve(run, summary)),
    ]
    total = len(steps) + 1

    def step(number: int, name: str, title: str, fn: Callable[[], str]) -> None:
        emit(StepEvent(number, total, name, title, "started"))
        t0 = time.perf_counter()
        try:
            message = fn()
        except Exception as e:  # any library error still names the step, in one line
            text = str(e) if isinstance(e, ForgeError) else f"{type(e).__name__}: {e}"
            emit(StepEvent(number, total, name, title, "failed", text, time.perf_counter() - t0))
            raise QuickstartStepError(name, title, text, root) from e
        summary.steps.append((title, time.perf_counter() - t0, message))
        emit(StepEvent(number, total, name, title, "done", message, time.perf_counter() - t0))

    step(1, "workspace", "Create the workspace", lambda: _workspace(run))
    with inside(root) as ws:
        run.ws = ws
        for number, (name, title, fn) in enumerate(steps, start=2):
            step(number, name, title, fn)
    summary.elapsed_s = round(time.perf_counter() - started, 2)
    return summary
