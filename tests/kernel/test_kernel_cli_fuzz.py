"""Family 5: no input a user can give makes a CLI command print a traceback; errors are one line, exit 2."""

from __future__ import annotations

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.cli import cli, main

# long-running or interactive commands; each has its own tests with real inputs
SKIPPED = {"tui", "quickstart", "scheduler", "serve", "server", "init", "tune run"}


def _commands() -> list[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(cli)
    found = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            path = (*prefix, name)
            if isinstance(cmd, click.Group):
                walk(cmd, path)
            elif " ".join(path) not in SKIPPED and any(not getattr(p, "is_flag", False) for p in cmd.params):
                found.append((path, cmd))

    walk(cli, ())
    return found


COMMANDS = _commands()
HOSTILE = ["", " ", "../../etc/passwd", "/", "é\u202e\u200b", "9" * 400, "-1", "-0", "1e309", "nan", "inf",
           "{", "[" * 3000, '{"a": ' * 2000, "a@b@c", "x@v99999999999999999999999", "name@", "@", "view:",
           "view:../x", "\U0001f600", "'; DROP TABLE runs; --", "metrics.x > 1e999999", "((((((" * 200,
           "99999999999999999999", "-99999999999999999999", "0x10", "NaN@production", "%s%n", "a" * 5000]
values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), st.integers().map(str))


def _invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def _argv(path: tuple[str, ...], cmd: click.Command, draw: st.DataObject) -> list[str]:
    argv = list(path)
    for param in cmd.params:
        if isinstance(param, click.Argument):
            if param.required or draw.draw(st.booleans()):
                argv.append(draw.draw(values))
        elif not getattr(param, "is_flag", False) and (param.required or draw.draw(st.booleans())):
            argv += [param.opts[0], draw.draw(values)]
    if path == ("jobs", "wait"):
        argv += ["--timeout", "0.05"]
    return argv


@settings(max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_command_answers_hostile_arguments_in_one_line(workspace, capsys, data):
    path, cmd = data.draw(st.sampled_from(COMMANDS))
    argv = _argv(path, cmd, data)
    code, err = _invoke(argv, capsys)
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)


@pytest.mark.parametrize("argv", [["runs", "show", "\udcff"], ["runs", "ls", "--limit", "x"], ["runs", "nope"],
                                  ["jobs", "show", "a\x00b"], ["monitor", "alerts", "ack", "9" * 30],
                                  ["runs", "search", "(" * 5000 + "metrics.x > 1" + ")" * 5000],
                                  ["pipeline", "run", "p", "--params", "[1, 2]"],
                                  ["serve", "--port", "70000"], ["server", "--port", "70000"]])
def test_known_hostile_arguments(workspace, capsys, argv):
    code, err = _invoke(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("text", [b"\xff\xfe\x00binary", b"tracking = 5\n", b'plugins = "x"\n', b"serving = []\n",
                                  b"[serving]\nport = 70000\n", b"[tracking]\nflush_interval_s = nan\n",
                                  b"[tracking]\nflush_interval_s = -1\n", b"[" * 5000])
def test_a_broken_plugins_toml_is_one_line(workspace, capsys, text):
    (workspace.root / "plugins.toml").write_bytes(text)
    from forgeml.workspace import set_current

    set_current(None)
    code, err = _invoke(["runs", "ls"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "plugins.toml" in err, err


@pytest.mark.parametrize("spec", [b"command = 5\n", b'command = "x"\ngpus = "two"\n', b"\x00\xff", b"= = =",
                                  b'command = "x"\nenv = 3\n', b'command = "x"\nparams = [1]\n', b"[[[[", b"42"])
def test_job_specs_with_wrong_types_are_one_line(workspace, capsys, tmp_path, spec):
    path = tmp_path / "spec.toml"
    path.write_bytes(spec)
    code, err = _invoke(["submit", "--spec", str(path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
