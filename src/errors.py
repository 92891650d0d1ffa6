"""One kind of error for a user's mistake, and the wrapper that turns it into one line."""
import functools
import sys


class UserError(Exception):
    """A mistake in the user's input (file, row, flag): reported as one line, exit code 2."""


def exit_on_user_error(main):
    """Run `main`; on a UserError print `error: <message>` to stderr and exit 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
