"""``alignrank`` command line (typer): data, train, sweep, sync, tune, evaluate, profile, report.

Every command reads its defaults from ``params.yaml`` (``--params``) and accepts ``--set-file`` fragments
then ``--set key=value`` overrides (dotted keys), then its own options. A list is ``a,b`` or ``[a,b]``
everywhere (``--variants``, ``--set sweep.variants=...``, params.yaml). Expected errors print one line and
exit with 2 (usage / params: the key, what is allowed, the closest valid name) or 1 (failure); ``--debug``
shows the traceback. ``--help`` of any command imports neither torch nor ultralytics, MLflow or Ray.

Examples:
    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--version"]).output.split()[0]
    'alignrank'
    >>> CliRunner().invoke(app, ["train", "--variant", "ful"]).stderr.strip()
    "error: train.variant: must be one of [...], got 'ful' (did you mean 'full'?)"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from alignrank.config import ParamsError, load_params, parse_overrides, parse_value
from alignrank.errors import AlignRankError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags shown as --x/--no-x (no <bool> column), [a,b] kept, rich not imported
    help="AlignRank: reproducible, distributed experiments for YOLO-AlignRank.",
)

_STATE = {"debug": False}

ParamsOpt = typer.Option(None, "--params", "-p", metavar="FILE", help="params file (default: ./params.yaml)")
SetOpt = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="override a param: dotted.key=value (repeatable)")
SetFileOpt = typer.Option(None, "--set-file", metavar="FILE", help="YAML fragment of dotted keys to apply before --set (repeatable)")
ListHelp = "comma-separated or [a,b]"


def _params(path: Optional[Path], sets: Optional[List[str]], set_files: Optional[List[Path]], extra: dict | None = None):
    """Params of ``path`` with ``--set-file`` fragments, then ``--set`` overrides, then the command's own options."""
    overrides = parse_overrides(sets or [])
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})  # typed values, validated as params
    params = load_params(path, overrides, set_files or ())
    from alignrank.env import setup_offline

    # once the params are valid (a bad one is refused in a blink), before any command imports
    # ultralytics/MLflow/Ray; not in the group callback, so `alignrank <cmd> --help` stays cheap
    setup_offline()
    return params


def _list(text: Optional[str]):
    """A list option's text as the params value: ``a,b`` and ``[a,b]`` are the same list (validated as params)."""
    return None if text is None else parse_value(text)


def _fail(e: BaseException, code: int) -> None:
    if _STATE["debug"]:
        raise e
    typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _guard(fn):
    """Run a command body, mapping expected errors to one line + exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AlignRankError as e:  # ParamsError is a UsageError: exit 2
            _fail(e, e.exit_code)
        except OSError as e:  # a read-only or full output folder met outside our writers: one line, exit 1
            from alignrank.errors import write_error

            err = write_error("the output folder", e)  # (names e.filename when the error has one)
            if err is e:
                raise
            _fail(err, 1)
        except KeyboardInterrupt:
            typer.secho("interrupted: finished work is kept; re-run the same command to resume", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _print_version(value: bool) -> None:
    if value:
        from alignrank import __version__

        typer.echo(f"alignrank {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="show tracebacks of expected errors"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"),
) -> None:
    """AlignRank command line."""
    _STATE["debug"] = debug


@app.command()
@_guard
def data(params: Optional[Path] = ParamsOpt, overrides: Optional[List[str]] = SetOpt, set_file: Optional[List[Path]] = SetFileOpt) -> None:
    """Build the dataset (synthetic default or COCO 2017 download) under data.root."""
    p = _params(params, overrides, set_file)
    from alignrank.data.build import run_data

    _print_json(run_data(p))


@app.command()
@_guard
def train(
    variant: Optional[str] = typer.Option(None, help="registered variant (default: train.variant)"),
    seed: Optional[int] = typer.Option(None, help="seed (default: train.seed)"),
    params: Optional[Path] = ParamsOpt,
    overrides: Optional[List[str]] = SetOpt,
    set_file: Optional[List[Path]] = SetFileOpt,
) -> None:
    """Train one (variant, seed) in-process on train.device, tracked in MLflow."""
    p = _params(params, overrides, set_file, {"train.variant": variant, "train.seed": seed})
    from alignrank.runs.run import run_single

    _print_json(run_single(p))


@app.command()
@_guard
def sweep(
    variants: Optional[str] = typer.Option(None, metavar="LIST", help=f"variants to train, {ListHelp} (default: sweep.variants)"),
    seeds: Optional[str] = typer.Option(None, metavar="LIST", help=f"seeds per variant, {ListHelp} (default: sweep.seeds)"),
    plan_only: bool = typer.Option(False, "--plan", help="print what would run and an estimate (as `alignrank plan`); start nothing"),
    params: Optional[Path] = ParamsOpt,
    overrides: Optional[List[str]] = SetOpt,
    set_file: Optional[List[Path]] = SetFileOpt,
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON instead of the summary"),
) -> None:
    """Train every (variant, seed) of sweep.* on Ray (local or ray.address), cached and resumable."""
    p = _params(params, overrides, set_file, {"sweep.variants": _list(variants), "sweep.seeds": _list(seeds)})
    if plan_only:
        from alignrank.runs.plan import format_plan, make_plan

        typer.echo(format_plan(make_plan(p)))
        return
    from alignrank.runs.sweep import run_sweep

    summary = run_sweep(p)
    if as_json:
        _print_json(summary)
    else:
        from alignrank.report.console import sweep_summary

        typer.echo(sweep_summary(p, summary))
    if summary.get("failed"):
        raise typer.Exit(1)


@app.command(name="plan")
@_guard
def plan_cmd(
    variants: Optional[str] = typer.Option(None, metavar="LIST", help=f"variants, {ListHelp} (default: sweep.variants)"),
    seeds: Optional[str] = typer.Option(None, metavar="LIST", help=f"seeds per variant, {ListHelp} (default: sweep.seeds)"),
    img_per_s: Optional[float] = typer.Option(None, "--img-per-s", metavar="N", help="training images/s of one run on the target device (default: measured by finished runs of the same setup)"),
    cpus: Optional[float] = typer.Option(None, "--cpus", metavar="N", help="CPUs of the cluster (limits the runs at once)"),
    gpus: Optional[float] = typer.Option(None, "--gpus", metavar="N", help="GPUs of the cluster (limits the runs at once)"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON instead of a table"),
    params: Optional[Path] = ParamsOpt,
    overrides: Optional[List[str]] = SetOpt,
    set_file: Optional[List[Path]] = SetFileOpt,
) -> None:
    """Dry run of the sweep: each run (train / resume / cached), resources, Ray waves, wall time and GPU-hours."""
    if img_per_s is not None and img_per_s <= 0:
        raise ParamsError(f"plan --img-per-s: must be > 0, got {img_per_s}")
    p = _params(params, overrides, set_file, {"sweep.variants": _list(variants), "sweep.seeds": _list(seeds)})
    from alignrank.runs.plan import format_plan, make_plan

    out = make_plan(p, img_per_s=img_per_s, cpus=cpus, gpus=gpus)
    if as_json:
        _print_json(out)
    else:
        typer.echo(format_plan(out))


@app.command(name="variants")
@_guard
def variants_cmd(as_json: bool = typer.Option(False, "--json", help="print the variants as JSON instead of a table")) -> None:
    """List the registered variants: name, head, loss and what each compares."""
    from alignrank.variants import VARIANTS

    rows = [{"name": n, "head": v.head, "loss": v.loss, "description": v.description} for n, v in VARIANTS.items()]
    if as_json:
        _print_json(rows)
        return
    w = [max(len(r[k]) for r in rows) for k in ("name", "head", "loss")]
    for r in rows:
        typer.echo(f"{r['name']:<{w[0]}}  {r['head']:<{w[1]}}  {r['loss']:<{w[2]}}  {r['description']}")


@app.command()
@_guard
def sync(params: Optional[Path] = ParamsOpt, overrides: Optional[List[str]] = SetOpt, set_file: Optional[List[Path]] = SetFileOpt) -> None:
    """Replay tracking records spooled while the MLflow server was unreachable (safe to repeat)."""
    p = _params(params, overrides, set_file)
    from alignrank.tracking.sync import run_sync

    summary = run_sync(p)
    _print_json(summary)
    if summary.get("failed"):
        raise typer.Exit(1)


@app.command()
@_guard
def tune(
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted search"),
    params: Optional[Path] = ParamsOpt,
    overrides: Optional[List[str]] = SetOpt,
    set_file: Optional[List[Path]] = SetFileOpt,
) -> None:
    """Ray Tune search over tune.space (RCQ/CSD hyper-parameters) on our trainer; best -> tune.out_dir/best.yaml."""
    p = _params(params, overrides, set_file)
    from alignrank.tune.search import run_tune

    _print_json(run_tune(p, resume=resume))


@app.command()
@_guard
def evaluate(
    gt: Optional[Path] = typer.Option(None, metavar="FILE", help="COCO instances JSON (with --pred: evaluate files only)"),
    pred: Optional[Path] = typer.Option(None, metavar="FILE", help="COCO results JSON of predictions"),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write the metrics here"),
    candidates: Optional[Path] = typer.Option(None, metavar="FILE", help="pre-NMS candidates (.npz or COCO results JSON) for rank/NMS-free metrics"),
    one2one: Optional[Path] = typer.Option(None, "--one2one", metavar="FILE", help="an NMS-free model's one-to-one detections (COCO results JSON, e.g. predictions_o2o.json): o2o_AP, no NMS"),
    run: Optional[str] = typer.Option(None, metavar="RUN", help="held-out data: predict with this run's best.pt (run folder, run name or variant/seed) on --images, score against --gt"),
    images: Optional[Path] = typer.Option(None, metavar="DIR", help="with --run: folder of the --gt JSON's images"),
    params: Optional[Path] = ParamsOpt,
    overrides: Optional[List[str]] = SetOpt,
    set_file: Optional[List[Path]] = SetFileOpt,
) -> None:
    """COCO metrics (pycocotools) + rank consistency, calibration, error breakdown, NMS-free AP."""
    if run is not None or images is not None:
        if run is None or images is None or gt is None or pred is not None or one2one is not None:
            raise ParamsError("evaluate --run: give --run, --gt and --images (and no --pred or --one2one)")
        p = _params(params, overrides, set_file)
        from alignrank.eval.evaluator import format_table
        from alignrank.eval.heldout import evaluate_heldout

        out = evaluate_heldout(p, run, gt, images, json_out=json_out)
        typer.echo(format_table(out["metrics"]), err=True)
        _print_json(out)
        return
    if (gt is None) != (pred is None):
        raise ParamsError("evaluate: give both --gt and --pred, or neither (evaluate the sweep's runs)")
    p = _params(params, overrides, set_file)
    if gt is not None:
        from alignrank.eval.files import evaluate_files

        evaluate_files(gt, pred, json_out=json_out, params=p.eval, candidates=candidates, one2one=one2one)
    else:
        from alignrank.eval.runs import run_evaluate

        _print_json(run_evaluate(p))


@app.command()
@_guard
def profile(
    variants: Optional[str] = typer.Option(None, metavar="LIST", help=f"variants profiled, {ListHelp} (default: profile.variants)"),
    scale: Optional[str] = typer.Option(None, help="model scale (default: profile.scale)"),
    imgsz: Optional[int] = typer.Option(None, help="input side (default: profile.imgsz)"),
    onnx: Optional[bool] = typer.Option(None, "--onnx/--no-onnx", help="also time ONNX Runtime (default: profile.onnx)", show_default=False),
    json_out: Optional[Path] = typer.Option(None, "--json", metavar="FILE", help="write the figures here"),
    loss: bool = typer.Option(False, "--loss", help="benchmark the loss (baseline vs RCQ) instead"),
    params: Optional[Path] = ParamsOpt,
    overrides: Optional[List[str]] = SetOpt,
    set_file: Optional[List[Path]] = SetFileOpt,
) -> None:
    """Params, GFLOPs (custom ops counted), latency (eager, ONNX Runtime, CUDA) and ratios to baseline."""
    extra = {"profile.variants": _list(variants), "profile.scale": scale, "profile.imgsz": imgsz, "profile.onnx": onnx}
    p = _params(params, overrides, set_file, extra)
    if loss:
        from alignrank.profile.loss_bench import run_loss_benchmark

        run_loss_benchmark(p, json_out=json_out)
    else:
        from alignrank.profile.compare import run_profile

        run_profile(p, json_out=json_out)


ReadmeOpt = typer.Option(False, "--readme", help="also write <report.out_dir>/README_excerpt.md (setup, machine, "
                         "versions, commit, main/paired/power tables) and print it instead of the summary")


@app.command()
@_guard
def report(params: Optional[Path] = ParamsOpt, overrides: Optional[List[str]] = SetOpt, set_file: Optional[List[Path]] = SetFileOpt,
           readme: bool = ReadmeOpt,
           as_json: bool = typer.Option(False, "--json", help="print the result as JSON instead of the summary")) -> None:
    """Result tables (md/csv/tex) and plots under report.out_dir from the evaluated runs."""
    p = _params(params, overrides, set_file)
    from alignrank.report.results import run_report

    out = run_report(p)
    excerpt = None
    if readme:
        from alignrank.report.readme import write_readme_excerpt

        excerpt = write_readme_excerpt(p)
    if as_json:
        _print_json(out)
    elif excerpt is not None:
        typer.echo(excerpt.read_text(), nl=False)
    else:
        from alignrank.report.console import report_summary

        typer.echo(report_summary(out))


def entrypoint() -> None:
    """Console-script entry point."""
    app(prog_name="alignrank")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entrypoint())
