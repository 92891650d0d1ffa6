"""One kind of error for a user's mistake, and the wrapper that turns it into one line."""
import functools
import sys


class UserError(Exception):
    """A mistake in the user's input (file, row, flag): reported as one line, exit code 2."""


class RowProblems:
    """What to do with a bad row of a data table (missing image, malformed annotation, bad label).

    Strict (the default): the first one is a UserError. With --skip-bad: each is recorded
    (source file, table row, the same message) so the caller can drop the rows and log
    them; never skipped silently."""

    def __init__(self, skip=False):
        self.skip = skip
        self.found = []

    def report(self, source, row, message):
        if not self.skip:
            raise UserError(message)
        self.found.append({"source": str(source), "row": int(row), "problem": message})

    def rows_of(self, source):
        return sorted({f["row"] for f in self.found if f["source"] == str(source)})

    def renumber(self, source, new_row):
        """A table of `source` whose rows were merged or expanded: each recorded row r becomes
        new_row[r], a row number or a list of them (a row that became several: each is bad)."""
        renumbered = []
        for found in self.found:
            rows = new_row[found["row"]] if found["source"] == str(source) else found["row"]
            renumbered += [{**found, "row": int(r)} for r in (rows if hasattr(rows, "__len__") else [rows])]
        self.found = renumbered


STRICT = RowProblems()


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
