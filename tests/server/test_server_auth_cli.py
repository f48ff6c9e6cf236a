"""`forgeml auth`: grant, principals, token create/ls/revoke, whoami; errors in one line."""

from __future__ import annotations

import json
from typing import Any

from forgeml.cli import main


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_auth_commands(workspace: Any, capsys: Any) -> None:
    from forgeml.auth import authenticate
    from forgeml.auth.service import local_name

    code, out, _ = run(capsys, "auth", "whoami")
    assert code == 0 and out.strip() == f"{local_name()} (admin)"  # a personal workspace
    assert run(capsys, "auth", "grant", "carol", "approver")[0] == 0
    code, out, _ = run(capsys, "auth", "principals", "--json")
    roles = {p["name"]: p["roles"] for p in json.loads(out)}
    assert roles == {"carol": ["approver"], local_name(): ["admin"]}
    code, token, err = run(capsys, "auth", "token", "create", "carol", "--model", "fraud*", "--expires", "1h")
    assert code == 0 and token.startswith("fml_") and "cannot be shown again" in err
    principal = authenticate(workspace, f"Bearer {token.strip()}")
    assert principal.name == "carol" and principal.models == ("fraud*",)
    code, out, _ = run(capsys, "auth", "token", "ls", "--json")
    listed = json.loads(out)
    assert [t["state"] for t in listed] == ["active"] and token.strip() not in out
    assert run(capsys, "auth", "token", "revoke", listed[0]["id"])[0] == 0
    code, out, _ = run(capsys, "auth", "token", "ls", "--json")
    assert json.loads(out)[0]["state"] == "revoked"
    code, _, err = run(capsys, "auth", "grant", "carol", "aprover")
    assert code == 2 and "did you mean 'approver'" in err and "Traceback" not in err
    code, _, err = run(capsys, "auth", "token", "create", "bad name!")
    assert code == 2 and "invalid principal name" in err
    code, _, err = run(capsys, "auth", "token", "create", "carol", "--op", "runs.wrte")
    assert code == 2 and "did you mean 'runs.write'" in err
