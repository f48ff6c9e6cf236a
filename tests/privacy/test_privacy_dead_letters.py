"""forget reaches the dead letters: records set aside as they arrived, subject keys included."""

from __future__ import annotations

import json


def _dead(workspace, view, records):
    from forgeml.features.dead_letters import DeadLetters

    letters = DeadLetters(workspace, view)
    return letters.write("push", [(dict(r), "amount: not a number") for r in records])


def test_forget_finds_and_erases_a_subjects_dead_letters_and_keeps_the_rest(workspace):
    from forgeml.features.dead_letters import dead_letter_path, read_dead_letters
    from forgeml.privacy import forget, verify_forgotten

    _dead(workspace, "card_tx", [{"user_id": 42, "amount": "x", "_partition": "0", "_offset": 1},
                                 {"user_id": "7", "amount": "y", "_partition": "0", "_offset": 2},
                                 {"user_id": "42", "amount": "z", "_partition": "0", "_offset": 3}])
    _dead(workspace, "other_view", [{"merchant": "m1", "amount": "?"}])
    path = dead_letter_path(workspace, "card_tx")
    with open(path, "a") as f:
        f.write('{"view": "card_tx", "record": {"user_id": "42"')  # a line cut short by a crash

    found = forget("user_id=42", dry_run=True, workspace=workspace)[0]
    assert [(h.place, h.location, h.rows) for h in found.holdings if h.place == "dead_letters"] == [
        ("dead_letters", "card_tx.dead.jsonl", 2)]
    assert "42" in path.read_text()  # a dry run changes nothing

    report = forget("user_id=42", workspace=workspace)[0]
    assert [h.rows for h in report.holdings if h.place == "dead_letters"] == [2]
    assert [r["record"] for r in read_dead_letters(path)] == [{"user_id": "7", "amount": "y"}]
    assert '"42"' not in path.read_text() and ": 42" not in path.read_text()
    assert all(json.loads(line) for line in path.read_text().splitlines())  # the torn line is gone too
    assert read_dead_letters(dead_letter_path(workspace, "other_view"))[0]["record"]["merchant"] == "m1"
    assert [h for h in verify_forgotten("user_id=42", workspace=workspace)[0].holdings
            if h.place == "dead_letters"] == []


def test_an_erased_record_replayed_from_the_stream_is_not_set_aside_again(workspace):
    """The writer that held the erased position keeps skipping it: a replay does not bring the subject back."""
    from forgeml.features.dead_letters import DeadLetters, dead_letter_path, read_dead_letters
    from forgeml.privacy import forget

    letters = DeadLetters(workspace, "card_tx")
    record = {"user_id": "42", "amount": "x", "_partition": "0", "_offset": 9}
    assert letters.write("redis", [(dict(record), "bad")]) == 1
    forget("user_id=42", workspace=workspace)
    assert letters.write("redis", [(dict(record), "bad")]) == 0
    assert read_dead_letters(dead_letter_path(workspace, "card_tx")) == []
