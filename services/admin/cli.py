"""The command line of `chip.py admin`: its commands, and the server's settings (flags, CHIP_*
variables, --env-file), read by services/config.py as the server reads them."""

import argparse
import dataclasses

from services import config as configuration
from services.config import Config, ConfigError

# the settings the commands use, listed in their --help; the server's others are taken, and unused,
# so that the servers' environment file and variables serve as they are
USED = ("db", "valkey", "env_file")

REASONS = ("rejected", "expired", "too_large", "channel_gone", "status_rejected", "status_expired", "msg_expired")

DESCRIPTION = """\
The operator's commands, run on a host of chip's with the servers' settings (flags, CHIP_* variables,
--env-file): they read and mend what the chip processes keep in Redis and read RapidPro's PostgreSQL.
Each prints a table, or JSON with --json. Exit status: 0; 1 when `status` finds a problem, a letter
named is not found (or cannot be replayed), or Redis does not answer; 2 on a bad setting or usage."""

STATUS = """\
Every chip process that beat in the last minute (each writes its state to Redis every 10 s), the
events waiting for Courier (how many, the oldest's age), the messages waiting for their visitors in
outboxes, and the dead letters kept, by reason. Exit status 1 when no process is ready or the oldest
event for Courier has waited longer than --max-backlog-age: a cron or Nagios check."""

CHAT = """\
One chat: its outbox (the messages waiting for the visitor, oldest first), its events waiting for
Courier, the email the visitor gave, its contact and URN in RapidPro's database, and its dead letters."""

LETTERS = """\
Dead letters: what chip gave up (an event Courier rejected or never took within --inbound-expiry,
one too large, one of a channel gone, a status Courier refused; an outgoing message no visitor came
for within --msg-expiry, reported failed). Without an action: list the newest (--limit), oldest first."""

REPLAY = """\
Put letters back where they were given up from, in the order they were given up, and drop them: an
event at the end of its chat's Courier queue (posted at once by the running chip processes), a
message at the end of its chat's outbox (pushed to the visitor, when connected, at once). Each
letter is replayed once, however often this runs. A letter kept only in part (too large) is not."""


def _seconds(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be greater than zero")
    return number


def _count(value):
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number, 0 or more")
    return int(value)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError(message)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON, not a table")
    settings = common.add_argument_group(
        "settings",
        "the server's, as flags, CHIP_<NAME> variables or --env-file (`chip.py --help` lists them "
        "all; every one is taken, these are used)",
    )
    configuration.add_settings(settings, shown=USED)

    top = _Parser(
        prog="chip.py admin",
        description=DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="command", parser_class=_Parser)

    status = commands.add_parser(
        "status",
        parents=[common],
        description=STATUS,
        help="processes, backlogs, dead letters; exit 1 on a problem",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--max-backlog-age",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="the oldest event for Courier may wait this long before the status is a problem (default: 600)",
    )

    chat = commands.add_parser(
        "chat",
        parents=[common],
        description=CHAT,
        help="one chat: outbox, Courier queue, email, contact",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("channel", help="the channel's UUID")
    chat.add_argument("chat_id", help="the chat's ID")

    letters = commands.add_parser(
        "dead-letters",
        parents=[common],
        description=LETTERS,
        help="list, show, replay or drop what chip gave up",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _filters(letters)
    letters.add_argument("--limit", type=_count, default=100, help="list the newest this many (default 100; 0: all)")
    actions = letters.add_subparsers(dest="action", metavar="action", parser_class=_Parser)
    show = actions.add_parser("show", parents=[common], help="one letter in full")
    show.add_argument("ids", nargs=1, metavar="id")
    replay = actions.add_parser(
        "replay",
        parents=[common],
        description=REPLAY,
        help="put letters back in their queue or outbox, once, in order",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _chosen(replay)
    drop = actions.add_parser("drop", parents=[common], help="drop letters")
    _chosen(drop)
    return top


def _filters(command):
    # no defaults: given before the action or after it, a filter holds (an action's default would undo it)
    command.add_argument("--channel", default=argparse.SUPPRESS, metavar="UUID", help="only this channel's letters")
    command.add_argument(
        "--reason", default=argparse.SUPPRESS, choices=REASONS, help="only letters given up for this reason"
    )


def _chosen(action):
    action.add_argument("ids", nargs="*", metavar="id", help="the letters, by ID")
    action.add_argument("--all", action="store_true", help="every letter (of --channel, for --reason)")
    _filters(action)


def parse(argv: list) -> tuple[Config, argparse.Namespace]:
    """The settings and the command; ConfigError on a bad setting or a bad command line."""
    args = parser().parse_args(argv)
    for name, default in (("json", False), ("channel", None), ("reason", None), ("action", None)):
        setattr(args, name, getattr(args, name, default))
    names = {field.name for field in dataclasses.fields(Config)}
    config = configuration.from_flags({name: value for name, value in vars(args).items() if name in names})
    if args.action in ("replay", "drop") and bool(args.ids) == bool(args.all):
        raise ConfigError(f"dead-letters {args.action}: name letters by ID, or --all, not both")
    if args.action in ("replay", "drop") and args.ids and (args.channel or args.reason):
        raise ConfigError(f"dead-letters {args.action}: --channel and --reason choose among --all")
    return config, args
