"""The `refdesk` command line: the entry point, which parses the arguments and runs one
command.

The arguments are declared in `component.cli_parser`, the data commands in
`component.cli_commands` and the output rules in `component.cli_output`. Each command
imports only what it needs, when it runs: `--help` or a mistyped argument loads no
configuration, store or XMPP library, `check-config` no store, and `ban`, `admin`, `purge`
and `backup` no XMPP library.

Every failure the user can cause ends as one line on standard error and a non-zero
exit status, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from component.cli_output import UsageError, fail, print_line, undecodable
from component.cli_parser import DEFAULT_CONFIG, build_parser
from component.config_checks import ConfigError, example_secret_left
from component.core.redact import scrub, url_secrets
from component.logs import hide_secrets, setup_logging, use_format

__all__ = ["DEFAULT_CONFIG", "UsageError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`refdesk`); tests call it in-process with `argv`."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    bad = undecodable(arguments)
    if bad is not None:
        fail(f"argument {bad} is not valid UTF-8 text")
        return 2
    args = build_parser().parse_args(arguments)
    setup_logging(args.verbose)
    hidden: tuple[str, ...] = ()
    try:
        if args.command == "demo":
            from component.demo import run_demo

            return run_demo(args.dir, args.port, args.host)
        from component.config_loader import load_config

        config = load_config(args.config)
        # The database URLs' passwords, whichever command prints or logs an error that
        # quotes them (a driver's message, a URL in a refusal).
        hidden = url_secrets(config.storage.url) + url_secrets(str(getattr(args, "to", "") or ""))
        hide_secrets(hidden)
        if args.command == "check-config":
            left = example_secret_left(config.xmpp.secret)
            if left is not None:
                fail(f"{args.config}: {left}")
                return 1
            print_line(f"{args.config}: OK")
            if args.connect:
                from component.doctor import run_checks

                checks = asyncio.run(run_checks(config))
                for check in checks:
                    print_line(check.line())
                return 0 if all(check.ok for check in checks) else 1
            return 0
        if args.command == "run":
            from component.runner import serve_forever

            use_format(config.log.format)

            asyncio.run(serve_forever(config))
            return 0
        # Imported here: only the data commands need the store and the directory.
        from component.cli_commands import run_store_command

        run_store_command(args, config)
        return 0
    except BrokenPipeError:
        # The reader went away (`refdesk ban list | head`): stop quietly, as a program
        # that SIGPIPE ended would. Standard output is pointed at /dev/null so that the
        # interpreter's last flush at exit does not print a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if not _fixable(exc):
            if isinstance(exc, OSError):
                fail(scrub(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), hidden))
                return 1
            raise
        fail(scrub(str(exc), hidden))
        return 2
    except KeyboardInterrupt:
        return 130


def _fixable(exc: Exception) -> bool:
    """True for an error the user can fix (bad configuration, arguments or data), printed
    as one line with exit status 2. Called by `main` when a command fails.

    The store's and the directory's errors are looked up only if their modules were
    loaded: a command that never imported them cannot have raised them, and importing
    them here would cost every failing command the time `main` saves by importing lazily.
    """
    kinds: list[type[Exception]] = [UsageError, ConfigError]
    if "component.store" in sys.modules:
        from component.store import StoreError

        kinds.append(StoreError)
    if "component.directory" in sys.modules:
        from component.directory import DirectoryError

        kinds.append(DirectoryError)
    return isinstance(exc, tuple(kinds))


if __name__ == "__main__":
    raise SystemExit(main())
