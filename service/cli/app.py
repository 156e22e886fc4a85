"""The Typer application the command modules register on, and the one-line error every command ends with."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Understudy: LLM-assisted auto-labeling.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on real data; write JSON, tables and plots.")
app.add_typer(bench_app, name="bench")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: list, revoke, rotate (create with create-key).")
app.add_typer(keys_app, name="keys")


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the result to exit with status 2."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)
