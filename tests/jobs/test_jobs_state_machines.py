"""Family 7: every way a job or a push can end leaves the job, its run and the online store consistent."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.errors import ForgeError, ValidationError
from forgeml.jobs import JobSpec, cancel, get_job, submit
from forgeml.tracking import get_run, search_runs


def test_a_job_cancelled_while_pending_ends_cancelled_and_its_run_killed(jobs_ws):
    job = submit(JobSpec(command=["true"]), jobs_ws)
    assert get_run(job.run_id, workspace=jobs_ws).status == "SCHEDULED"
    assert cancel(job.id, jobs_ws).state == "CANCELLED"
    run = get_run(job.run_id, workspace=jobs_ws)
    assert run.status == "KILLED" and run.end_time is not None


@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(priority=st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63) - 1)),
       retries=st.integers(0, 5), cancel_it=st.booleans())
def test_a_submit_either_queues_a_job_with_its_run_or_leaves_nothing(jobs_ws, priority, retries, cancel_it):
    """Whatever the spec, a refused submit leaves no run behind, and a cancelled job's run is KILLED."""
    before = len(search_runs(workspace=jobs_ws))
    try:
        job = submit(JobSpec(command=["true"], priority=priority, retries=retries), jobs_ws)
    except ForgeError as e:
        assert "\n" not in str(e)
        assert len(search_runs(workspace=jobs_ws)) == before
        return
    assert len(search_runs(workspace=jobs_ws)) == before + 1
    if cancel_it:
        cancel(job.id, jobs_ws)
        assert get_job(job.id, jobs_ws).state == "CANCELLED"
        assert get_run(job.run_id, workspace=jobs_ws).status == "KILLED"
    else:
        assert get_run(job.run_id, workspace=jobs_ws).status == "SCHEDULED"


@pytest.fixture
def pushable(workspace):
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource

    user = Entity("user", join_keys=["user_id"])
    view = FeatureView("clicks", entities=[user], source=PushSource("clicks_push"), features=[Feature("n", "int64")])
    store = FeatureStore(workspace)
    store.apply([user, view])
    return store


def _rows(when: dt.datetime, n: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1], "event_timestamp": [pd.Timestamp(when)], "n": [n]})


def test_a_push_far_in_the_future_is_refused_and_pins_nothing(pushable):
    now = dt.datetime.now(dt.UTC)
    assert pushable.push("clicks", _rows(now - dt.timedelta(seconds=1), 1)) == 1
    with pytest.raises(ValidationError, match=r"more than 300s in the future"):
        pushable.push("clicks", _rows(now + dt.timedelta(days=365), 99))
    assert pushable.push("clicks", _rows(now, 2)) == 1  # the later, honest value still wins online
    assert pushable.get_online_features({"user_id": [1]}, ["clicks:n"]).to_dict()["n"] == [2]
    assert pushable.push("clicks", _rows(now + dt.timedelta(seconds=60), 3)) == 1  # within the allowed skew


def test_the_skew_is_configured(configure):
    ws = configure("[features]\nmax_future_skew_s = 0\n")
    assert ws.config.section("features").max_future_skew_s == 0
    with pytest.raises(ForgeError, match="out of range"):
        configure("[features]\nmax_future_skew_s = -5\n").config.section("features")
