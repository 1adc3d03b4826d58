"""The ``gazelab`` command line: one Typer app, one module per command group under ``gazelab.commands``.

User errors (:class:`gazelab.errors.GazelabError`) end in one line on stderr and exit code 2; a traceback is
shown only with ``--debug``.
"""

from __future__ import annotations

import sys

import typer

from gazelab.errors import GazelabError

app = typer.Typer(
    name="gazelab",
    help="Gaze target estimation: data, models, evaluation, semi-supervised training, inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    _state["debug"] = debug


def _register_commands() -> None:
    # Imported here so that `import gazelab` stays light; each module adds its commands to `app`.
    import gazelab.commands.eval  # noqa: F401
    import gazelab.commands.train  # noqa: F401
    from gazelab.commands import data, demo, export, models, predict, prior, refine, split, synth, video  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gazelab`` script (Typer handles usage errors, ``--help`` and exit codes)."""
    _register_commands()
    try:
        app(args=argv, prog_name="gazelab")
    except GazelabError as err:
        if _state["debug"]:
            raise
        print(f"gazelab: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # a bug, not the user's doing: one line, the traceback on request
        if _state["debug"]:
            raise
        print(f"gazelab: internal error: {type(err).__name__}: {err} — rerun with `gazelab --debug ...` for the "
              "traceback and please report it", file=sys.stderr)  # fmt: skip
        sys.exit(1)
