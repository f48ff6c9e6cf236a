"""`forgeml forget` through the real CLI: dry run, erasure, verify, models to retrain, dataset lineage."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from privacy_support import SUBJECT, populate

from forgeml.cli import cli, main


def _run(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_forget_dry_run_then_erase_then_verify(workspace, tmp_path, capsys):
    """The dry run lists places and models; forget erases and names the model; verify then passes."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from forgeml.registry import register_model

    refs = populate(workspace, tmp_path)
    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    mv = register_model("churn", model, datasets=[refs["dataset"]], workspace=workspace)

    with pytest.raises(SystemExit) as exited:
        main(["forget", "--verify", f"user_id={SUBJECT}"])
    assert exited.value.code != 0
    assert "data of a forgotten subject remains" in capsys.readouterr().err

    planned = json.loads(_run("forget", f"user_id={SUBJECT}", "--dry-run", "--json"))[0]
    assert planned["dry_run"] and planned["erasure"] is None
    assert planned["models_to_retrain"] == [f"churn@{mv.version}"]
    assert {h["place"] for h in planned["holdings"]} >= {"offline", "online", "datasets"}

    done = json.loads(_run("forget", f"user_id={SUBJECT}", "--json"))[0]
    assert done["erasure"] and done["rows"] == planned["rows"]
    assert done["models_to_retrain"] == [f"churn@{mv.version}"]

    assert "0 row(s) remains" in _run("forget", "--verify", f"user_id={SUBJECT}")
    shown = _run("datasets", "show", refs["dataset"])
    assert f"erasure {done['erasure']}: {refs['dataset']} -> people@v2" in shown


def test_forget_without_a_subject_is_a_usage_error(workspace):
    """No subject at all is refused by the command line."""
    assert "Missing argument" in _run("forget", code=2)


class _Blind:
    """A throwaway plugin whose eraser cannot find or erase anything."""

    from forgeml import hookimpl

    @hookimpl
    def forgeml_register_erasers(self, register):
        register("crm_export", lambda workspace: object())


def test_a_place_that_cannot_erase_is_reported_and_fails_the_command(workspace, tmp_path, capsys):
    """Everything else is erased; the command names the place it could not reach and exits non-zero."""
    from forgeml.privacy import forget, verify_forgotten

    populate(workspace, tmp_path)
    workspace.plugins.pm.register(_Blind(), name="blind-eraser")
    try:
        with pytest.raises(SystemExit) as exited:
            main(["forget", f"user_id={SUBJECT}"])
        assert exited.value.code != 0
        assert "crm_export (object cannot find or erase a data subject)" in capsys.readouterr().err
        again = verify_forgotten(f"user_id={SUBJECT}", workspace=workspace)[0]
        assert again.holdings == [] and again.unreachable
        assert forget(f"user_id={SUBJECT}", dry_run=True, workspace=workspace)[0].unreachable
    finally:
        workspace.plugins.pm.unregister(name="blind-eraser")
