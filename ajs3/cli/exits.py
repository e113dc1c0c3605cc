"""The one place where errors become messages and exit codes.

A command handler returns its exit code or raises; nothing else in the CLI prints an
error or picks an exit code for one. Every error line has the form
``ajs3: AJS3-Exxx: what (what to do)``; exit 1 for an error, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from ajs3.cli.output import note, print_json, wants_json
from ajs3.errors import AjsError, Code, DefinitionError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
#: the shell's convention for a command ended by SIGINT
#: `import` when some JP1 units or parameters could not be mapped (nothing written)
EXIT_UNMAPPED = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


def usage_error(usage: str, message: str) -> NoReturn:
    """A command line argparse could not read: the usage, a coded message, exit 2."""
    sys.stderr.write(usage)
    note(f"{Code.BAD_ARGUMENT.value}: {message} (see --help)")
    sys.exit(EXIT_USAGE)


def failed(code: Code, message: str) -> int:
    """Report a failure that is a result rather than an error (a run that ended
    abnormally) and give the exit code for it."""
    note(f"{code.value}: {message}")
    return EXIT_ERROR


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Call a command handler and turn whatever it raises into a message and an exit code."""
    try:
        return handler(args)
    except DefinitionError as exc:
        if wants_json(args):
            print_json(exc.to_dict())
        else:
            note(f"{exc.code.value}: {exc.message}")
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_ERROR
    except AjsError as exc:
        note(str(exc))
        return EXIT_ERROR
    except PermissionError as exc:
        # A file the library did not expect to be closed to this user: still no traceback.
        denied = AjsError(
            f"{exc.filename or 'a file'} is not open to this user ({exc.strerror or exc})",
            code=Code.PERMISSION_DENIED,
            hint="run the command as a user who may use it",
        )
        note(str(denied))
        return EXIT_ERROR
    except KeyboardInterrupt:
        note("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `ajs3 show | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
