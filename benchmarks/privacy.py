"""Privacy floors: forget one subject across a large workspace; encrypted artifact I/O against plain; prints JSON.

Floors (issue 21): ``forget`` of one subject with 1M prediction-log rows and 10M offline rows < 30 s
on a 2-core machine; encrypted 100 MB artifact write and read each within 1.5x of plain. The subject
has rows on every day of the offline history and of the log, the worst case: every file is rewritten.
No peer erases a subject across a feature store, dataset snapshots and prediction logs in one step
(Feast, MLflow and Evidently have no delete-by-entity operation), so the peer side is reported skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import finish

FORGET_FLOOR_S = 30.0
ENCRYPTION_FLOOR_X = 1.5
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def forget_workload(args: argparse.Namespace, work: Path) -> dict:
    """Fill a workspace with offline rows, a prediction log and online rows, then forget one user."""
    import numpy as np
    import pyarrow as pa

    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource
    from forgeml.privacy import forget
    from forgeml.serving.predlog import PredictionLogger, log_root
    from forgeml.workspace import Workspace

    ws = Workspace.init(work / "ws")
    user = Entity("user", join_keys=("user_id",))
    view = FeatureView("activity", entities=[user], source=PushSource("activity"),
                       features=[Feature("clicks", "int64"), Feature("spend", "float64")])
    store = FeatureStore(ws)
    store.apply([user, view])
    rng = np.random.default_rng(7)
    days, per_day = args.days, args.offline_rows // args.days
    started = time.perf_counter()
    for day in range(days):
        ids = rng.integers(0, args.users, per_day)
        ids[:3] = args.subject  # the subject is active every day
        micros = int((T0 + timedelta(days=day)).timestamp() * 1e6) + rng.integers(0, 86_400_000_000, per_day)
        store.offline.write("activity", pa.table({
            "user_id": ids, "event_timestamp": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "clicks": rng.integers(0, 50, per_day), "spend": rng.random(per_day)}), "event_timestamp")
    latest = pa.table({"user_id": np.arange(args.users), "event_timestamp": pa.array(
        [T0] * args.users, pa.timestamp("us", tz="UTC")), "clicks": np.zeros(args.users, dtype=np.int64),
        "spend": np.zeros(args.users)})
    store.online.write("activity", latest, ["user_id"], "event_timestamp")
    log_days, per_log_day = 10, args.log_rows // 10
    logger = PredictionLogger(log_root(ws), max_pending_rows=per_log_day)  # take a whole day before each flush
    for day in range(log_days):
        for start in range(0, per_log_day, 10_000):
            n = min(10_000, per_log_day - start)
            ids = rng.integers(0, args.users, n).tolist()
            ids[0] = args.subject
            logger.log("churn", 1, "primary", f"r{day}-{start}", T0 + timedelta(days=day), 1.0,
                       {"user_id": ids, "spend": rng.random(n).tolist()}, rng.random(n).tolist(), n)
        logger.flush()
    filled_s = time.perf_counter() - started
    if logger.written_rows != log_days * per_log_day:
        raise SystemExit(f"the prediction log holds {logger.written_rows} rows, not {log_days * per_log_day}: "
                         f"{logger.dropped_rows} dropped, {logger.errors} failed ({logger.last_error})")
    began = time.perf_counter()
    report = forget([f"user_id={args.subject}"], workspace=ws)[0]
    forget_s = time.perf_counter() - began
    ws.close()
    return {"offline_rows": days * per_day, "prediction_log_rows": log_days * per_log_day, "online_users": args.users,
            "fill_s": round(filled_s, 1), "forget_s": round(forget_s, 2), "rows_erased": report.rows,
            "places": sorted({h.place for h in report.holdings}),
            "floor_under_30s": forget_s < FORGET_FLOOR_S}


def encryption_workload(args: argparse.Namespace, work: Path) -> dict:
    """Write and read one large artifact through the plain and the encrypted store, alternating samples.

    Plain and encrypted samples alternate, so a busy machine slows both alike; the medians of wall
    time and of this process's CPU time are reported.
    """
    import base64

    from forgeml.pii.encryption import Keyring
    from forgeml.storage.artifacts import FsspecArtifactStore
    from forgeml.storage.sealed_artifacts import EncryptedArtifactStore

    os.environ["FORGEML_BENCH_KEYS"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    keyring = Keyring.from_env("FORGEML_BENCH_KEYS")
    source = work / "artifact.bin"
    source.write_bytes(os.urandom(args.artifact_mb << 20))
    makers = {"plain": lambda root: FsspecArtifactStore(str(root)),
              "encrypted": lambda root: EncryptedArtifactStore(str(root), keyring)}
    samples: dict = {name: {"write_s": [], "read_s": [], "write_cpu_s": [], "read_cpu_s": []} for name in makers}
    for i in range(args.repeats):
        for name, make in makers.items():
            store = make(work / f"{name}-{i}")
            wall, cpu = time.perf_counter(), time.process_time()
            digest = store.put_file(source)
            samples[name]["write_s"].append(time.perf_counter() - wall)
            samples[name]["write_cpu_s"].append(time.process_time() - cpu)
            wall, cpu = time.perf_counter(), time.process_time()
            store.get_file(digest, work / f"{name}.out")
            samples[name]["read_s"].append(time.perf_counter() - wall)
            samples[name]["read_cpu_s"].append(time.process_time() - cpu)
            shutil.rmtree(work / f"{name}-{i}")
    out: dict = {"artifact_mb": args.artifact_mb, "repeats": args.repeats}
    for name, got in samples.items():
        out[name] = {k: round(statistics.median(v), 3) for k, v in got.items()}
    for what in ("write_s", "read_s", "write_cpu_s", "read_cpu_s"):
        out[f"{what.removesuffix('_s')}_x_plain"] = round(out["encrypted"][what] / out["plain"][what], 2)
    out["floor_within_1_5x"] = out["write_x_plain"] <= ENCRYPTION_FLOOR_X and out["read_x_plain"] <= ENCRYPTION_FLOOR_X
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline-rows", type=int, default=10_000_000)
    parser.add_argument("--log-rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--subject", type=int, default=4242)
    parser.add_argument("--artifact-mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forgeml-bench-privacy-") as folder:
        work = Path(folder)
        result = {"forget": forget_workload(args, work), "encryption": encryption_workload(args, work),
                  "skipped": "no peer erases a subject across a feature store, snapshots and prediction logs "
                             "(Feast, MLflow and Evidently have no delete-by-entity operation)"}
    finish("privacy", result)


if __name__ == "__main__":
    main()
