"""The ``mim-connector`` command. Errors become exit codes here and nowhere else.

Exit codes: 0 success; 1 runtime failure; 2 invalid configuration or usage; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from connector import __version__
from connector.config import DEFAULT_CONFIG, load_config
from connector.config import json_schema as config_schema
from connector.core.errors import ConfigError, ConnectorError, CredentialError
from connector.core.secrets import REDACTOR
from connector.telemetry.log import json_configured

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
Command = Callable[[argparse.Namespace], int]


def _print(text: str) -> None:
    print(REDACTOR.redact(text))


def _utc_time(text: str) -> datetime:
    """An argparse type: ServiceNow's ``YYYY-MM-DD HH:MM:SS`` (or ISO 8601), read as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like '2026-11-22 09:30:00'") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration offline and print every problem, or a one-line summary."""
    try:
        loaded = load_config(args.config, check_secrets=True)
    except ConfigError as exc:
        for problem in exc.problems:
            _print(str(problem))
        errors = sum(1 for p in exc.problems if p.severity == "error")
        warnings = len(exc.problems) - errors
        _print(
            f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}: "
            "configuration is invalid"
        )
        return EXIT_INVALID
    for warning in loaded.warnings:
        _print(str(warning))
    if args.strict and loaded.warnings:
        _print(f"{len(loaded.warnings)} warning(s) and --strict: configuration is not ready")
        return EXIT_INVALID
    rules = loaded.rules.rules
    enabled = sum(1 for rule in rules if rule.enabled)
    suppliers = ", ".join(loaded.suppliers) or "none"
    _print(
        f"OK: {len(loaded.files)} files valid - {len(rules)} rules ({enabled} enabled), "
        f"{len(loaded.suppliers)} suppliers ({suppliers})"
        + (
            f", {len(loaded.warnings)} warning{'s' if len(loaded.warnings) != 1 else ''}"
            if loaded.warnings
            else ""
        )
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGINT/SIGTERM (SIGHUP reloads the configuration); summarise at the end.

    On a terminal a live panel shows progress; the summary of what was synced goes to stdout.
    """
    from connector.commands.live import prepare_run
    from connector.runtime.daemon import Daemon
    from connector.runtime.live_view import view_for

    return Daemon(args.config, prepare=prepare_run, observer=view_for(sys.stdout)).run()


def cmd_sync(args: argparse.Namespace) -> int:
    """One cycle now; with ``--dry-run`` print the plan and write nothing."""
    from connector.commands.sync import sync_once

    return sync_once(args.config, dry_run=args.dry_run, progress=args.progress, as_json=args.json)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Live checks of the configuration against ServiceNow and every supplier site."""
    from connector.commands.doctor import doctor

    return doctor(args.config)


def cmd_state(args: argparse.Namespace) -> int:
    """Look at or act on the state store."""
    from connector.commands import state

    if args.state_command == "show":
        return state.show(args.config, args.incident, as_json=args.json)
    if args.dlq_command == "list":
        return state.dlq_list(args.config, every=args.all)
    return state.dlq_act(args.config, args.letter_id, args.dlq_command)


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve the ServiceNow and Jira simulators until SIGINT or SIGTERM."""
    from connector.sandbox.command import SandboxOptions, serve

    suppliers = (
        [name.strip() for name in args.suppliers.split(",") if name.strip()] if args.suppliers else None
    )
    return serve(
        SandboxOptions(
            config=args.config,
            host=args.host,
            servicenow_port=args.servicenow_port,
            jira_port=args.jira_port,
            suppliers=suppliers,
            deployment=args.jira_deployment,
            replay=args.replay,
            speed=args.speed,
            seed=args.seed,
        )
    )


def cmd_rules_backtest(args: argparse.Namespace) -> int:
    """Replay history through the promotion rules; report per rule and against real priority 1s."""
    from connector.commands.backtest import run_backtest

    return run_backtest(
        args.config, args.events, args.since, args.json, args.chart, args.progress, sys.stdout
    )


def cmd_rules_test(args: argparse.Namespace) -> int:
    """Explain which rule matches one incident (live, or from a JSON file)."""
    from connector.commands.explain import rules_test

    if (args.number is None) == (args.file is None):
        print("give an incident number or --file, not both", file=sys.stderr)
        return EXIT_INVALID
    if args.events is not None and args.number is None:
        print("--events needs the incident number to look up in it", file=sys.stderr)
        return EXIT_INVALID
    return rules_test(args.config, args.number, args.file, tree=args.tree, at=args.at, events=args.events)


def cmd_schema(args: argparse.Namespace) -> int:
    """Print, write or verify the JSON Schemas of the config file kinds."""
    if args.write:
        for path in config_schema.write(args.write):
            _print(f"wrote {path}")
        return EXIT_OK
    if args.check:
        stale = config_schema.stale(args.check)
        for name in stale:
            _print(f"{args.check / name}: out of date; run `make schema`")
        return EXIT_INVALID if stale else EXIT_OK
    for _name, (model, title) in config_schema.SCHEMAS.items():
        _print(config_schema.render(model, title))
    return EXIT_OK


def _register_supplier(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str
) -> None:
    """``supplier init``: draft a supplier mapping from the supplier's live Jira project."""

    def cmd_supplier_init(args: argparse.Namespace) -> int:
        from connector.commands.supplier_init import InitOptions, supplier_init

        fields = ("name", "project", "config", "jira_url", "deployment", "user", "token", "issue_type")
        options = {name: getattr(args, name) for name in fields}
        return supplier_init(InitOptions(**options, output=args.output, force=args.force))

    group = commands.add_parser(
        "supplier", help="supplier mapping tools", description="Supplier mapping tools."
    )
    actions = group.add_subparsers(dest="supplier_command", metavar="WHAT", required=True)
    init_help = "draft mappings/suppliers/NAME.yaml from the supplier's live Jira project"
    init = actions.add_parser("init", help=init_help, description=init_help)
    init.set_defaults(func=cmd_supplier_init)
    init.add_argument("name", metavar="NAME", help="the supplier's name (as in config/connector.yaml)")
    init.add_argument("--project", required=True, metavar="KEY", help="the Jira project key")
    init.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    init.add_argument(
        "--jira", dest="jira_url", metavar="URL", help="the site, when NAME is not in the config yet"
    )
    init.add_argument(
        "--deployment", choices=("cloud", "datacenter"), help="default: cloud for *.atlassian.net"
    )
    init.add_argument(
        "--user", help="with --jira: the account's e-mail (Cloud) or user name (Data Center basic)"
    )
    init.add_argument(
        "--token", metavar="REF", help="with --jira: API token or PAT by reference, '${VAR}' or file:PATH"
    )
    init.add_argument(
        "--issue-type", metavar="NAME", help="the issue type to mirror into (default: Incident)"
    )
    init.add_argument(
        "-o", "--output", metavar="FILE", help="where to write ('-' for stdout; default: the mappings folder)"
    )
    init.add_argument("--force", action="store_true", help="replace an existing file")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; subcommands map to ``cmd_*`` functions."""
    parser = argparse.ArgumentParser(
        prog="mim-connector",
        description="ServiceNow <-> Jira connector for Major Incident Management.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    check = add("check", cmd_check, "validate config and mappings offline; list every problem")
    check.add_argument(
        "-c", "--config", type=Path, default=DEFAULT_CONFIG, help="connector config (default: %(default)s)"
    )
    check.add_argument(
        "--strict", action="store_true", help="treat warnings (e.g. unset credentials) as errors"
    )

    run = add("run", cmd_run, "run the daemon (SIGINT/SIGTERM stop it cleanly, SIGHUP reloads the config)")
    run.add_argument(
        "-c", "--config", type=Path, default=DEFAULT_CONFIG, help="connector config (default: %(default)s)"
    )

    config_help = "connector config (default: %(default)s)"
    sync = add("sync", cmd_sync, "run one sync cycle now (--dry-run: print the plan, write nothing)")
    sync.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    sync.add_argument(
        "--once", action="store_true", default=True, help="one cycle (the only mode; for clarity)"
    )
    sync.add_argument("--dry-run", action="store_true", help="decide and print, make no write call")
    sync.add_argument("--json", action="store_true", help="print the plan (or what was done) as JSON")
    sync.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )

    doctor = add(
        "doctor", cmd_doctor, "live checks: logins, projects, statuses and fields exist on both sides"
    )
    doctor.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help=config_help)

    state_parser = add("state", cmd_state, "inspect the state store; manage the dead-letter queue")
    state_parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    state_commands = state_parser.add_subparsers(dest="state_command", metavar="WHAT", required=True)

    def config_again(sub: argparse.ArgumentParser) -> None:
        """``-c`` after a sub-command too; SUPPRESS keeps one given before it when not repeated."""
        sub.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="connector config")

    show_help = "totals (watermarks, links, intents, dead letters), or one incident's links, intents, letters, decisions"
    shown = state_commands.add_parser("show", help=show_help, description=show_help)
    config_again(shown)
    shown.add_argument("incident", nargs="?", metavar="INC0010001", help="one incident, by number or sys_id")
    shown.add_argument("--json", action="store_true", help="print JSON instead")
    dlq = state_commands.add_parser("dlq", help="the dead-letter queue")
    config_again(dlq)
    dlq_commands = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    listing = dlq_commands.add_parser("list", help="list queued dead letters")
    config_again(listing)
    listing.add_argument("--all", action="store_true", help="include resolved and dropped ones")
    for action, text in (
        ("retry", "retry a dead letter at the next cycle"),
        ("drop", "give up on a dead letter"),
    ):
        sub = dlq_commands.add_parser(action, help=text)
        config_again(sub)
        sub.add_argument("letter_id", type=int, metavar="ID")

    sandbox = add(
        "sandbox", cmd_sandbox, "serve the ServiceNow and Jira simulators (for the demo, tests, dry runs)"
    )
    sandbox.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("config/demo.yaml"),
        help="world to serve (default: %(default)s)",
    )
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--servicenow-port", type=int, default=8090)
    sandbox.add_argument("--jira-port", type=int, default=8091)
    sandbox.add_argument(
        "--suppliers", help="comma-separated supplier sites (default: the config's suppliers)"
    )
    sandbox.add_argument(
        "--jira-deployment", choices=("cloud", "datacenter"), help="override every site's deployment"
    )
    sandbox.add_argument(
        "--replay", metavar="EVENTS.csv", help="replay an incident event log ('builtin' = the shipped slice)"
    )
    sandbox.add_argument(
        "--speed", type=float, default=0.0, help="replay pace, multiple of real time (0 = flat out)"
    )
    sandbox.add_argument("--seed", type=int, default=0, help="seed of the fault-injection dice")

    rules_parser = commands.add_parser(
        "rules",
        help="promotion-rule tools",
        description="Promotion-rule tools: explain and back-test the rules.",
    )
    rules_commands = rules_parser.add_subparsers(dest="rules_command", metavar="WHAT", required=True)
    test_help = "which rule matches an incident, and which condition failed for every rule before it"
    test = rules_commands.add_parser("test", help=test_help, description=test_help)
    test.set_defaults(func=cmd_rules_test)
    test.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    test.add_argument(
        "number", nargs="?", metavar="INC0010001", help="read the incident live through the adapter"
    )
    test.add_argument(
        "--file",
        type=Path,
        metavar="incident.json",
        help="read the incident from a JSON file instead: a Table API answer (any sysparm_display_value), "
        "or a flat or nested object; fields the rules read that it lacks are named",
    )
    test.add_argument(
        "--events",
        metavar="EVENTS.csv",
        help="read the incident from an audit export ('builtin' = the shipped slice), replayed up to --at",
    )
    test.add_argument("--tree", action="store_true", help="evaluate every rule and every condition")
    test.add_argument(
        "--at",
        type=_utc_time,
        metavar="'YYYY-MM-DD HH:MM:SS'",
        help="evaluate at this UTC time instead of now (time conditions, e.g. open_for)",
    )
    backtest_help = "replay history through the rules: per-rule decisions, timing, comparison with real P1s"
    backtest = rules_commands.add_parser("backtest", help=backtest_help, description=backtest_help)
    backtest.set_defaults(func=cmd_rules_backtest)
    backtest.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help=config_help)
    history = backtest.add_mutually_exclusive_group(required=True)
    history.add_argument(
        "--events",
        metavar="EVENTS.csv",
        help="a ServiceNow incident audit export ('builtin' = the shipped slice)",
    )
    history.add_argument(
        "--since", metavar="DURATION", help="incidents the live instance changed in this window, e.g. 30d"
    )
    backtest.add_argument("--json", action="store_true", help="print machine-readable JSON instead")
    backtest.add_argument(
        "--chart", type=Path, metavar="FILE.html|FILE.svg", help="write a chart of decisions per week"
    )
    backtest.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: on a terminal)",
    )

    _register_supplier(commands, config_help)

    schema = add("schema", cmd_schema, "print, write or verify the JSON Schemas of the config files")
    target = schema.add_mutually_exclusive_group()
    target.add_argument("--write", type=Path, metavar="DIR", help="write the schemas into DIR")
    target.add_argument("--check", type=Path, metavar="DIR", help="exit 2 if the schemas in DIR are stale")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m connector``.

    Every failure ends in one line per error on stderr (a JSON log line when the configuration
    asks for JSON logging) and an exit code, never a traceback: a bug prints its type and
    message, and its traceback only with ``MIM_CONNECTOR_TRACEBACK=1``.
    """
    args = build_parser().parse_args(argv)
    command: Command = args.func
    try:
        return command(args)
    except CredentialError as exc:
        _error(*exc.problems)
        return EXIT_INVALID
    except ConfigError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return EXIT_INVALID
    except ConnectorError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # the promise of one line holds for bugs too
        message = _store_failure(args, exc)
        if message is not None:
            _error(message)
            return EXIT_FAILURE
        if os.environ.get("MIM_CONNECTOR_TRACEBACK"):
            raise
        log.debug("unexpected failure", exc_info=True)
        _error(f"unexpected {type(exc).__name__}: {exc} (a bug; MIM_CONNECTOR_TRACEBACK=1 shows where)")
        return EXIT_FAILURE


def _error(*messages: str) -> None:
    """Print each message as ``error: …`` on stderr, or log it as a JSON line if logging is JSON."""
    for message in messages:
        text = REDACTOR.redact(message).replace("\n", " ")
        if json_configured():
            log.error("%s", text)
        else:
            print(f"error: {text}", file=sys.stderr)


def _store_failure(args: argparse.Namespace, exc: Exception) -> str | None:
    """A database error that escaped a command (e.g. a write to a read-only store) as the store's one line.

    ``None`` when ``exc`` is no database error: a bug, whose traceback must be seen.
    """
    from sqlalchemy.exc import SQLAlchemyError  # here: most commands never load SQLAlchemy

    if not isinstance(exc, SQLAlchemyError):
        return None
    from connector.store.db import locate
    from connector.store.opening import failure

    label = "(store.url)"
    config: Path | None = getattr(args, "config", None)
    if config is not None:
        try:
            loaded = load_config(config)
            label = locate(loaded.connector.store.url, loaded.base_dir).label
        except (ConnectorError, LookupError, OSError):
            pass
    return str(failure(exc, label))


if __name__ == "__main__":
    sys.exit(main())
