"""The `compress` command line: thin commands over the library.

Each command module in ``compress/commands`` parses its options and makes one
library call; this file assembles them and turns domain errors into one line
on stderr and a non-zero exit (tracebacks with ``COMPRESS_DEBUG=1``).
"""

from __future__ import annotations

import errno
import os
import sys

import typer
from typer._click import exceptions as click_errors  # typer carries its own copy of click
from typer.core import TyperGroup

from compress.commands import applying, diagnosing, measuring, planning
from compress.errors import CompressError

#: OSErrors that mean "cannot write here", reported as one line rather than a traceback.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)



class _OneLineUsageErrors(TyperGroup):
    """The command group, with click's usage errors (an unknown option, a missing value, a value
    of the wrong type) said in one line, as domain errors are, instead of usage, hint and error."""

    def main(self, args: list[str] | None = None, *rest: object, standalone_mode: bool = True,
             **kwargs: object) -> object:
        if not standalone_mode:
            return super().main(args, *rest, standalone_mode=False, **kwargs)
        try:
            code = super().main(args, *rest, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as err:  # `compress` alone: the help, as asked
            err.show()
            sys.exit(err.exit_code)
        except click_errors.ClickException as err:
            given = sys.argv[1:] if args is None else list(args)
            command = next((a for a in given if a in self.commands), None)
            print(usage_error_line(err, command), file=sys.stderr)
            sys.exit(err.exit_code)
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def usage_error_line(err: click_errors.ClickException, command: str | None) -> str:
    """'error: no such option: --gpux (Possible options: --gpu, --gpus); see `compress plan --help`'."""
    text = " ".join(err.format_message().split()).rstrip(".")
    problems = getattr(err.__cause__, "errors", None)  # a value typer's validation refused
    if callable(problems) and problems() and "input" in problems()[0]:
        text += f", got {str(problems()[0]['input'])[:40]!r}"
    where = f"compress {command}" if command else "compress"
    return f"error: {text[:1].lower()}{text[1:]}; see `{where} --help`"


app = typer.Typer(
    name="compress",
    cls=_OneLineUsageErrors,
    help="Plan, apply and measure LLM compression for a model on a GPU or CPU.",
    epilog="Example: compress plan -m llama-2-7b -g t4   (then: compress apply, compress bench, "
           "compress report; compress doctor says what runs here)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help text is plain text: a name such as compress[cluster] must not be read as markup.
    rich_markup_mode=None,
)
planning.register(app)
applying.register(app)
measuring.register(app)
diagnosing.register(app)


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars on stderr (they are off when stderr is not a terminal)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Keep other libraries' warnings that are hidden by default."),
) -> None:
    """Plan, apply and measure LLM compression for a model on a GPU or CPU."""
    from compress import progress

    # Environment variables, so that the measuring processes bench starts inherit them.
    if quiet:
        os.environ[progress.QUIET_ENV] = "1"
    if verbose:
        os.environ[progress.VERBOSE_ENV] = "1"
    progress.quiet_third_party()


def main() -> None:
    """Run the app; usage errors exit 2 through typer, domain errors print one line here."""
    try:
        app()
    except CompressError as err:
        if os.environ.get("COMPRESS_DEBUG"):
            raise
        from compress.output import printable

        # A name from a file or the command line may carry control characters: shown, never obeyed.
        print(f"error: {printable(err)}", file=sys.stderr)
        sys.exit(err.exit_code)
    except Exception as err:
        # A full disk or a read-only place met mid-run: say so in one line (the output was
        # written atomically, so nothing half-written is left behind).
        code, filename = _write_error(err)
        if os.environ.get("COMPRESS_DEBUG") or code not in _WRITE_ERRNOS:
            raise
        where = f" ({filename})" if filename else ""
        print(f"error: {os.strerror(code)}{where}: expected room and permission to write; free space or pick "
              "another path, then rerun", file=sys.stderr)
        sys.exit(1)


def _write_error(err: BaseException) -> tuple[int | None, str | None]:
    """The errno of a failed write in ``err`` or what caused it, and the file, where known.

    Libraries written in Rust (safetensors, tokenizers) raise their own exception types for an
    I/O error and keep the errno only in the text, as Rust's ``io::Error`` prints it: "(os error 28)"."""
    import re

    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None:
            return err.errno, err.filename
        found = re.search(r"\(os error (\d+)\)", str(err))
        if found:
            return int(found.group(1)), None
        err = err.__cause__ or err.__context__
    return None, None


if __name__ == "__main__":
    main()
