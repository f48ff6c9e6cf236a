"""The tracking API: runs, params, metrics, statuses, nesting, attaching, events and system metrics."""

from __future__ import annotations

import time

import pytest

import forgeml
from forgeml import hookimpl
from forgeml.errors import NotFoundError, ValidationError
from forgeml.tracking import (
    create_run,
    finish_run,
    get_metric_history,
    get_run,
    log_input,
    search_runs,
    start_run,
)


class TestLogging:
    def test_params_metrics_tags_reach_the_store(self, tracked):
        with forgeml.start_run(name="baseline", experiment="mnist", tags={"team": "vision"}) as run:
            forgeml.log_params({"lr": 1e-3, "optimizer": "adam", "layers": 4})
            forgeml.log_param("seed", 7)
            for step in range(5):
                forgeml.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
            forgeml.set_tag("stage", "dev")
            assert forgeml.active_run() is run
        stored = get_run(run.id)
        assert stored.status == "FINISHED" and stored.end_time >= stored.start_time
        assert stored.params == {"layers": "4", "lr": "0.001", "optimizer": "adam", "seed": "7"}
        assert stored.metrics == {"acc": pytest.approx(0.4), "loss": pytest.approx(0.2)}
        assert stored.tags == {"stage": "dev", "team": "vision"}
        assert stored.experiment == "mnist" and stored.name == "baseline"
        assert forgeml.active_run() is None

    def test_steps_count_up_per_key_when_not_given(self, tracked):
        with start_run() as run:
            for v in (3.0, 2.0, 1.0):
                forgeml.log_metric("loss", v)
            forgeml.log_metric("loss", 0.5, step=10)
            forgeml.log_metric("loss", 0.4)
            forgeml.log_metric("other", 9)
        history = get_metric_history(run.id, "loss")
        assert history["step"].tolist() == [0, 1, 2, 10, 11]
        assert history["value"].tolist() == [3.0, 2.0, 1.0, 0.5, 0.4]
        assert str(history["timestamp"].dtype).startswith("datetime64")
        assert get_metric_history(run.id, "other")["step"].tolist() == [0]

    def test_latest_metric_is_the_highest_step_not_the_last_logged(self, tracked):
        with start_run() as run:
            forgeml.log_metric("val", 0.1, step=5)
            forgeml.flush()
            forgeml.log_metric("val", 0.9, step=2)  # a late point for an earlier step
        assert get_run(run.id).metrics["val"] == pytest.approx(0.1)

    def test_values_that_are_not_numbers_are_rejected_before_buffering(self, tracked):
        with start_run() as run:
            with pytest.raises(ValidationError, match="must be a number"):
                forgeml.log_metric("loss", "not a number")
            with pytest.raises(ValidationError):
                forgeml.log_metric("", 1.0)
            forgeml.log_metric("loss", 1.0)
        assert len(get_metric_history(run.id, "loss")) == 1

    def test_logging_without_a_run_starts_one_like_mlflow(self, tracked):
        forgeml.log_metric("loss", 1.0)
        run = forgeml.active_run()
        assert run is not None and run.status == "RUNNING"
        forgeml.end_run()
        assert get_run(run.id).status == "FINISHED"
        assert forgeml.active_run() is None

    def test_inputs_and_throughput(self, tracked):
        with start_run() as run:
            log_input(dataset="mnist@v3", feature_view="users@2")
            rate = forgeml.log_throughput(1000, seconds=2.0)
            with pytest.raises(ValidationError):
                log_input()
        assert rate == 500.0
        stored = get_run(run.id)
        assert {"kind": "dataset", "ref": "mnist@v3"} in stored.inputs
        assert {"kind": "feature_view", "ref": "users@2"} in stored.inputs
        assert stored.metrics["throughput/samples_per_s"] == 500.0

    def test_unknown_run_is_a_clear_error(self, tracked):
        with pytest.raises(NotFoundError, match="forgeml runs ls"):
            get_run("0123456789abcdef")

    def test_a_unique_id_prefix_finds_the_run(self, tracked):
        with start_run() as run:
            pass
        assert get_run(run.id[:8]).id == run.id


class TestStatuses:
    def test_an_exception_fails_the_run_and_propagates(self, tracked):
        with pytest.raises(RuntimeError):
            with start_run() as run:
                forgeml.log_metric("loss", 1.0)
                raise RuntimeError("diverged")
        stored = get_run(run.id)
        assert stored.status == "FAILED"
        assert stored.metrics == {"loss": 1.0}  # flushed on the way out

    def test_keyboard_interrupt_kills_the_run(self, tracked):
        with pytest.raises(KeyboardInterrupt):
            with start_run() as run:
                raise KeyboardInterrupt
        assert get_run(run.id).status == "KILLED"

    def test_system_exit_zero_finishes_and_nonzero_fails(self, tracked):
        with pytest.raises(SystemExit):
            with start_run() as ok:
                raise SystemExit(0)
        with pytest.raises(SystemExit):
            with start_run() as bad:
                raise SystemExit(3)
        assert get_run(ok.id).status == "FINISHED"
        assert get_run(bad.id).status == "FAILED"

    def test_end_run_rejects_a_status_that_is_not_an_end(self, tracked):
        with start_run():
            with pytest.raises(ValidationError):
                forgeml.end_run("RUNNING")

    def test_a_script_that_never_ends_its_run_is_ended_at_exit(self, run_python):
        done = run_python("""
            import forgeml
            forgeml.start_run(name="forgot")
            forgeml.log_metric("loss", 0.25)
        """)
        done_failed = run_python("""
            import forgeml
            forgeml.start_run(name="crashed")
            forgeml.log_metric("loss", 0.5)
            raise ValueError("boom")
        """, check=False)
        assert done_failed.returncode == 1
        frame = search_runs("order by name")
        assert done.returncode == 0
        assert frame["name"].tolist() == ["crashed", "forgot"]
        assert frame["status"].tolist() == ["FAILED", "FINISHED"]
        assert frame["metrics.loss"].tolist() == [0.5, 0.25]


class TestNesting:
    def test_runs_started_inside_a_run_are_its_children(self, tracked):
        with start_run(name="study", experiment="tune") as study:
            for i in range(3):
                with start_run(name=f"trial-{i}") as trial:
                    forgeml.log_metric("score", i)
                    assert forgeml.active_run() is trial
                assert forgeml.active_run() is study
        children = search_runs(f"parent_id = '{study.id}' order by name")
        assert children["name"].tolist() == ["trial-0", "trial-1", "trial-2"]
        assert set(children["experiment"]) == {"tune"}
        assert children["metrics.score"].tolist() == [0, 1, 2]

    def test_explicit_parent_and_experiments_group_runs(self, tracked):
        parent = create_run(name="sweep", experiment="a")
        with start_run(parent=parent, experiment="b") as child:
            pass
        assert get_run(child.id).parent_id == parent.id
        assert search_runs("experiment = 'b'")["run_id"].tolist() == [child.id]


class TestServiceRuns:
    def test_create_and_finish_announce_once(self, tracked):
        seen = []

        class Listener:
            @hookimpl
            def forgeml_on_run_finished(self, run, workspace):
                seen.append((run.id, run.status, run.metrics))

        tracked.plugins.pm.register(Listener(), name="listener")
        try:
            run = create_run(name="job", experiment="jobs", tags={"forgeml.job_id": "j1"}, job_id="j1",
                             params={"lr": 0.1})
            assert get_run(run.id).status == "RUNNING" and get_run(run.id).job_id == "j1"
            finish_run(run.id, "FAILED")
            finish_run(run.id, "FAILED")  # the scheduler may repeat what the job already recorded
            with start_run() as own:
                forgeml.log_metric("loss", 2.0)
        finally:
            tracked.plugins.pm.unregister(name="listener")
        assert seen == [(run.id, "FAILED", {}), (own.id, "FINISHED", {"loss": 2.0})]
        with pytest.raises(ValidationError):
            finish_run(run.id, "DONE")

    def test_a_job_process_attaches_to_its_run_from_the_environment(self, tracked, run_python):
        run = create_run(name="job-run", experiment="jobs", job_id="job42")
        run_python("""
            import forgeml
            forgeml.log_params({"lr": 0.01})
            for step in range(100):
                forgeml.log_metric("loss", 1 / (step + 1), step=step)
        """, env={"FORGEML_RUN_ID": run.id, "FORGEML_JOB_ID": "job42", "FORGEML_PARAMS": '{"lr": 0.01}'})
        stored = get_run(run.id)
        assert stored.status == "FINISHED"
        assert stored.params == {"lr": "0.01"}
        assert stored.metrics["loss"] == pytest.approx(0.01)
        assert stored.context["job"]["id"] == "job42" and stored.context["job"]["params"] == {"lr": 0.01}
        assert len(search_runs("")) == 1  # attached, not a second run

    def test_a_non_zero_rank_logs_but_does_not_end_the_run(self, tracked, run_python):
        run = create_run(name="ddp")
        run_python("""
            import forgeml
            with forgeml.start_run():
                forgeml.log_metric("rank1_loss", 3.0)
        """, env={"FORGEML_RUN_ID": run.id, "RANK": "1"})
        stored = get_run(run.id)
        assert stored.status == "RUNNING" and stored.metrics == {"rank1_loss": 3.0}


class TestSystemMetrics:
    def test_sampler_with_declared_gpus(self, retrack, monkeypatch):
        """GPUs come from the `declared` inventory: no real GPU exists on the test machine."""
        ws = retrack(declared_gpus=2, system_metrics=True, system_metrics_interval_s=0.05)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
        with start_run(workspace=ws) as run:
            deadline = time.time() + 10
            while run._sampler.samples < 2 and time.time() < deadline:
                time.sleep(0.02)
        stored = get_run(run.id, workspace=ws)
        assert {"system/cpu_percent", "system/memory_percent", "system/gpu1/utilization",
                "system/gpu1/memory_used_mb"} <= set(stored.metrics)
        assert not any(k.startswith("system/gpu0/") for k in stored.metrics)  # not visible to this process
        assert 0 <= stored.metrics["system/memory_percent"] <= 100
        assert stored.context["gpus"][0]["name"]
