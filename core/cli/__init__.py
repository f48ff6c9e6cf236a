"""The ``forgeml`` command line: a root group whose subcommands load lazily, one module per group."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from forgeml.errors import ForgeError

# command name -> "module:attribute"; modules import only when the command runs or help lists it
COMMANDS: dict[str, str] = {
    "init": "forgeml.cli.workspace:init_cmd",
    "tune": "forgeml.cli.tune:tune_group",
    "doctor": "forgeml.cli.workspace:doctor_cmd",
    "migrate": "forgeml.cli.migrate:migrate_cmd",
    "plugins": "forgeml.cli.workspace:plugins_group",
    "plugin": "forgeml.cli.plugin:plugin_group",
    "config": "forgeml.cli.workspace:config_group",
    "monitor": "forgeml.cli.monitor:monitor_group",
    "pipeline": "forgeml.cli.pipeline:pipeline_group",
    "datasets": "forgeml.cli.datasets:datasets_group",
    "models": "forgeml.cli.models:models_group",
    "evaluate": "forgeml.cli.evaluate:evaluate_cmd",
    "explain": "forgeml.cli.explain:explain_cmd",
    "calibrate": "forgeml.cli.calibrate:calibrate_cmd",
    "submit": "forgeml.cli.jobs:submit_cmd",
    "jobs": "forgeml.cli.jobs:jobs_group",
    "scheduler": "forgeml.cli.jobs:scheduler_cmd",
    "queue": "forgeml.cli.queue:queue_cmd",
    "runs": "forgeml.cli.runs:runs_group",
    "targets": "forgeml.cli.targets:targets_group",
    "serve": "forgeml.cli.serve:serve_cmd",
    "server": "forgeml.cli.server:server_cmd",
    "auth": "forgeml.cli.auth:auth_group",
    "predict": "forgeml.cli.predict:predict_cmd",
    "experiment": "forgeml.cli.experiments:experiment_group",
    "features": "forgeml.cli.features:features_group",
    "label": "forgeml.cli.label:label_group",
    "quickstart": "forgeml.cli.quickstart:quickstart_cmd",
    "forget": "forgeml.cli.privacy:forget_cmd",
    "gc": "forgeml.cli.privacy:gc_group",
    "encryption": "forgeml.cli.privacy:encryption_group",
    "pseudonyms": "forgeml.cli.privacy:pseudonyms_group",
    "audit": "forgeml.cli.audit:audit_group",
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module only when it is needed."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self._plugins_loaded = False

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from forgeml.plugin_manager import make_plugin_manager

        # Only [plugins] matters for which commands exist: opening the whole workspace (validating
        # every section, importing every settings class) would slow `forgeml --help` for nothing,
        # and a config error is reported by the command that needs the workspace, not by help.
        try:
            host = make_plugin_manager(**_plugin_choices())
        except ForgeError:
            host = make_plugin_manager()
        host.register_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return built-in and plugin commands, sorted."""
        self._load_plugin_commands(ctx)
        return sorted(set(self.lazy) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Return a command, importing its module on first use."""
        if name in self.lazy and name not in self.commands:
            module, attr = self.lazy[name].split(":")
            try:
                from forgeml.cli.output import add_format_options

                self.commands[name] = add_format_options(getattr(importlib.import_module(module), attr))
            except Exception as e:  # one broken command module must not take `forgeml --help` down
                self.commands[name] = _unavailable(name, f"{module}: {type(e).__name__}: {e}")
        if name not in self.commands:
            self._load_plugin_commands(ctx)
        return self.commands.get(name)


def _plugin_choices() -> dict[str, Any]:
    """The [plugins] choices of the workspace around the current directory (none outside one)."""
    from forgeml.config import CONFIG_FILE, PluginsSettings, build_settings, read_toml
    from forgeml.workspace import find_root

    try:
        root = find_root()
    except ForgeError:
        return {}
    path = root / CONFIG_FILE
    raw = read_toml(path) if path.exists() else {}
    table = raw.get("plugins", {})
    if not isinstance(table, dict):
        return {}
    plugins = build_settings(PluginsSettings, table, f"{path}: [plugins]")
    return {"disabled": plugins.disabled, "local": plugins.local, "base_dir": root}


def _unavailable(name: str, reason: str) -> click.Command:
    """A stand-in for a command whose module failed to import: listed in help, fails in one line."""

    def fail() -> None:
        from forgeml.errors import PluginError

        raise PluginError(f"command {name!r} is unavailable: {reason}")

    return click.Command(name, callback=fail, help=f"(unavailable: {reason})", short_help="(unavailable)",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="forgeml", prog_name="forgeml")
def cli() -> None:
    """forgeml: feature store, tracking, GPU scheduling, tuning, registry, serving and monitoring on one machine."""


def one_line(message: str) -> str:
    """Return an error message as one line (a query's echoed text and caret are dropped: it names the column)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return "failed"
    if len(lines) > 1 and set(lines[-1]) == {"^"}:
        return lines[0]
    return "; ".join(lines)


def _check_argv(argv: list[str]) -> None:
    """Refuse arguments that cannot be text: bytes the locale could not decode, NUL characters."""
    from forgeml.errors import ValidationError

    for arg in argv:
        if "\x00" in arg:
            raise ValidationError(f"argument {arg!r} holds a NUL character")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(f"argument {arg!r} is not valid UTF-8 text") from None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ForgeError prints one line to stderr and exits 2, never a traceback."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        _check_argv(args)
        cli.main(args=args, prog_name="forgeml", standalone_mode=False)
    except ForgeError as e:
        click.echo(f"forgeml: error: {one_line(str(e))}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.UsageError as e:
        if isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # a bare group: its help is the answer
            e.show()
            sys.exit(e.exit_code)
        where = e.ctx.command_path if e.ctx is not None else "forgeml"
        click.echo(f"{where}: error: {one_line(e.format_message())} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"forgeml: error: {one_line(e.format_message())}", err=True)
        sys.exit(2)
    except BrokenPipeError:
        os._exit(0)
    except OSError as e:
        # what the operating system refused for a path the user gave: too long, not allowed, disk full
        if e.filename is None and not e.strerror:
            raise
        where = f": {e.filename!r}" if e.filename is not None else ""
        click.echo(f"forgeml: error: {e.strerror or e}{where}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
