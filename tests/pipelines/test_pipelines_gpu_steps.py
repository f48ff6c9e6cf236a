"""GPU steps run as scheduler jobs. No GPUs here: the ``declared`` inventory plugin offers 4 fake H100s that
placement hands out through CUDA_VISIBLE_DEVICES; the job itself is a real process."""

from __future__ import annotations

import textwrap

PIPES = textwrap.dedent('''
    import os
    from forgeml import pipeline, step

    @step
    def prepare(n):
        return list(range(n))

    @step(gpus=1)
    def train_on_gpu(data):
        return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "total": sum(data)}

    @pipeline
    def gpu_pipeline(n: int = 5):
        train_on_gpu(prepare(n))
''')

CONFIG = """
[pipelines]
modules = ["gpu_pipes.py"]

[scheduler]
poll_interval_s = 0.05

[scheduler.inventory]
plugin = "declared"
count = 4
"""


def test_a_gpu_step_runs_as_a_scheduler_job_and_its_output_comes_back(configure):
    ws = configure(CONFIG)
    (ws.root / "gpu_pipes.py").write_text(PIPES)
    from forgeml.jobs import Scheduler, get_job
    from forgeml.pipelines import run_pipeline

    scheduler = Scheduler(ws).start_in_thread()
    try:
        run = run_pipeline("gpu_pipeline", workspace=ws)
    finally:
        scheduler.stop()
    assert run.status == "SUCCEEDED", run.report() + "\n" + str(run.step("train_on_gpu").error)
    step = run.step("train_on_gpu")
    assert step.job_id and get_job(step.job_id, ws).state == "SUCCEEDED"
    out = run.output("train_on_gpu", ws)
    assert out["total"] == 10 and out["devices"] in {"0", "1", "2", "3"}
    # cached like any other step: a rerun submits no job
    again = run_pipeline("gpu_pipeline", workspace=ws)
    assert again.step("train_on_gpu").state == "CACHED" and again.step("train_on_gpu").job_id is None
