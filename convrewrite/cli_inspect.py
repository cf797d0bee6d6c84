"""`convrewrite inspect`: list every convolution and how it is classified."""

from __future__ import annotations

import json

import click

from .cli_common import guarded, settings, verbosity_options
from .interrupts import exit_on_interrupt


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=str, readable=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: {model, opsets, convolutions: [...]}, each with what every rule would do (rules).")
@verbosity_options
@guarded
def inspect_command(model: str, as_json: bool) -> None:
    """List every Conv, ConvTranspose, QLinearConv and ConvInteger in MODEL.

    Subgraphs (If/Loop/Scan bodies) and model-local functions are included.
    Each row gives the attributes with defaults filled and explicit pads, and
    the kinds that say which rewrites could apply. With -v (and in --json),
    every rule says what it would do with each convolution, or why not.
    """
    with exit_on_interrupt():  # Ctrl-C while onnx loads: exit at once
        from .inspection import inventory, render_text, summary_line
        from .model import load

    opts = settings()
    report = inventory(load(model), model, rules=as_json or opts.verbose)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif opts.quiet:
        click.echo(summary_line(report))
    else:
        click.echo(render_text(report))
