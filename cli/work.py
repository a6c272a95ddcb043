"""``vlaecodec train``, ``eval`` and ``bench``: the commands that measure models."""
from __future__ import annotations

import json

import click

from vlaecodec import progress
from vlaecodec.data import DATASETS, SPLITS

from .common import CONTEXT, QUIET, friendly

# `vlaecodec eval` with no arguments reports the IWAE NLL with this many samples
# (the paper used 4096; that is hours on 2 CPU cores for the full test set).
DEFAULT_IWAE_K = 64
SPLIT = click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True,
                     help="train, valid or test.")


@click.command(context_settings=dict(ignore_unknown_options=True, allow_extra_args=True, help_option_names=[]))
@click.pass_context
def train(ctx: click.Context) -> None:
    """Train a VLAE (all options are passed to `python -m vlaecodec.train`; try --help).

    \b
    Example:
        vlaecodec train --preset vlae-mnist --out runs/mnist --minutes 60
    """
    from vlaecodec.config import PRESETS
    from vlaecodec.train import main

    args = list(ctx.args)
    # train.py's own parser takes any --preset and fails later with a traceback: check it here.
    given = [a.split("=", 1)[1] if "=" in a else (args + [""])[i + 1]
             for i, a in enumerate(args) if a == "--preset" or a.startswith("--preset=")]
    bad = [p for p in given if p not in PRESETS]
    if bad:
        raise click.BadParameter(f"unknown preset {bad[0]!r}; choose from {', '.join(PRESETS)}",
                                 param_hint="'--preset'")
    main(args)


@click.command("eval", context_settings=CONTEXT)
@click.option("--model", default=None,
              help="Installed model name, or a float checkpoint (.pt) (default: the default model).")
@click.option("--dataset", type=click.Choice(DATASETS), default=None,
              help="binarized-mnist (binary models; their default), mnist (8-bit models' default) or fashion-mnist.")
@SPLIT
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images.")
@click.option("--iwae-k", type=click.IntRange(min=0), default=DEFAULT_IWAE_K, show_default=True,
              help="Importance samples for the IWAE NLL (0 skips it; the paper used 4096).")
@click.option("--json", "json_out", help="Also write the metrics as JSON to this file ('-' for stdout: "
              "the text lines then go to stderr).")
@QUIET
@friendly
def eval_cmd(model: str | None, dataset: str | None, split: str, limit: int | None, iwae_k: int,
             json_out: str | None, quiet: bool) -> None:
    """Evaluate a model: test -ELBO, KL (bits carried by z) and IWAE NLL.

    With no options: the default model on all 10,000 binarized MNIST test images.

    \b
    Example:
        vlaecodec eval
        vlaecodec eval --limit 1000 --iwae-k 0 --json elbo.json
    """
    from vlaecodec.evaluate import evaluate, evaluation_inputs, report_lines
    from vlaecodec.fileio import write_output

    target, about, images = evaluation_inputs(model, dataset, split, limit)
    with progress.bar("evaluating", len(images), quiet=quiet, passes=2 if iwae_k else 1) as cb:
        r = evaluate(target, images, iwae_k=iwae_k, progress=cb)
    click.echo("\n".join(report_lines(about, r)), err=json_out == "-")   # stdout keeps pure JSON
    if json_out:
        write_output(json_out, json.dumps({**about, **r}, indent=2).encode() + b"\n", overwrite=True)


@click.command(context_settings=CONTEXT)
@click.option("--dataset", type=click.Choice(DATASETS), default="binarized-mnist", show_default=True,
              help="Dataset to code.")
@SPLIT
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images (chained file).")
@click.option("--single-limit", type=click.IntRange(min=0),
              help="Images compressed one per file for the single-image size.")
@click.option("--model", default=None, help="Installed model name (default: the default model).")
@click.option("--out", "out_dir", help="Folder for the JSON and markdown results.")
@click.option("--no-peers", is_flag=True, help="Skip PNG/WebP/JPEG-XL/JBIG/bz2/xz.")
@click.option("--cli", "cli_timing", is_flag=True,
              help="Also time the vlaecodec command itself on the images as PNG files, and one digit.")
@click.option("--lossy", is_flag=True,
              help="The lossy bench instead (bench/lossy.py of a repository checkout): every lossy rate "
                   "level against thumbnails, JPEG, WebP and class labels, judged by pixel error and a "
                   "digit classifier, on the binarized test digits; JSON, markdown, plot and picture grid "
                   "(default folder bench/results).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@friendly(also=(RuntimeError, ValueError))   # the benches' own checks: no images, no lossy levels, ...
def bench(dataset: str, split: str, limit: int | None, single_limit: int | None, model: str | None,
          out_dir: str | None, no_peers: bool, cli_timing: bool, lossy: bool, quiet: bool) -> None:
    """Measure real bits/dim against the model's -ELBO, single-image sizes, speed and
    peer codecs on the same images; prints markdown and writes JSON.

    \b
    Example:
        vlaecodec bench --dataset binarized-mnist --split test
        vlaecodec bench --limit 1000 --single-limit 100 --no-peers
        vlaecodec bench --lossy --out bench/results     (from a repository checkout)
    """
    if lossy:
        if (dataset, split) != ("binarized-mnist", "test") or cli_timing:
            raise click.UsageError("--lossy measures the binarized-mnist test digits: "
                                   "no --dataset, --split or --cli with it")
        from vlaecodec import lossy_bench
        res = lossy_bench.run(model=model, limit=limit, single_limit=single_limit, out_dir=out_dir,
                              peers=not no_peers)
        paths = [res[k] for k in ("json_path", "markdown_path", "plot_path", "grid_path") if res.get(k)]
    else:
        from vlaecodec.bench import run_bench
        bars = progress.Bars(quiet=quiet)
        try:
            res = run_bench(dataset=dataset, split=split, limit=limit, single_limit=single_limit, model=model,
                            out_dir=out_dir, peers=not no_peers, progress_factory=bars, cli=cli_timing)
        finally:
            bars.close()
        paths = [res["json_path"]] if res.get("json_path") else []
    click.echo(res["markdown"])
    for path in paths:
        click.echo(f"wrote {path}", err=True)
