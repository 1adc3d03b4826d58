"""``gazelab prior ...``: make, merge, check and score gaze priors (VQA Grad-CAM or simulated; docs/priors.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gazelab.cli import app
from gazelab.errors import GazelabError

prior_app = typer.Typer(help="Gaze priors for semi-supervised training (VQA Grad-CAM, simulated).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(prior_app, name="prior")

DATA_HELP = "Annotation file (any format), dataset root (VAT, ChildPlay), or a `gazelab synth` folder (all splits)."
SHARD_HELP = "Do only part i of n (0 <= i < n; split by image) — one store per machine, then `gazelab prior merge`."
FLUSH_HELP = "Records per shard file: a kill loses at most this many; a rerun with the same options resumes."


def _console() -> Console:
    return Console(stderr=True)


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=_console(), transient=True
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)


def _generate(label: str, data: Path, out: Path, meta: dict, shard: str | None, produce_for, options: dict) -> None:
    """Shared body of ``run`` and ``simulate``: open (or resume) the store, do what is missing, report."""
    from gazelab.priors.jobs import parse_shard, pending, run_job
    from gazelab.priors.sources import load_frames
    from gazelab.priors.store import PriorStore

    part = parse_shard(shard)
    frames, root = load_frames(data, format=options["format"], root=options["root"], split=options["split"])
    store = PriorStore(out, create=True, meta=meta)
    todo = pending(frames, store, part)
    done = len(store)
    written = 0
    if todo:  # the model is loaded only when there is work left
        produce = produce_for(root)
        with _progress(label, len(todo)) as advance:
            written = run_job(todo, produce, store, options["batch_size"], options["flush_every"], advance)
    _console().print(f"{label}: {written} new, {done} already in {out} ({len(store)} in all)", highlight=False)


def _data_options(format: str | None, root: Path | None, split: str, batch_size: int, flush_every: int) -> dict:
    return {"format": format, "root": root, "split": split, "batch_size": batch_size, "flush_every": flush_every}


@prior_app.command("simulate")
def simulate(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Prior store folder (created, or resumed if it exists)."),
    p_correct: float = typer.Option(0.6, help="Probability that the blob sits on the true target."),
    jitter: float = typer.Option(0.25, help="Sd of the blob centre, in object sizes."),
    blob_scale: float = typer.Option(0.6, help="Blob sd, in object sizes."),
    head_weight: float = typer.Option(0.3, help="Weight of the blob on the person's own head."),
    noise: float = typer.Option(0.15, help="Sd of the background noise (before normalisation)."),
    grid: int = typer.Option(24, help="Patch grid of the simulated CAM (BLIP ViT-B/16 at 384 px: 24)."),
    p_invalid: float = typer.Option(0.02, help="Share of people without a usable prior."),
    seed: int = typer.Option(0, help="Seed: a person's map depends only on seed, image and person id."),
    missed_target_weight: float = typer.Option(0.0, help="Weight of the true target's blob when the peak is wrong."),
    shard: str = typer.Option(None, help=SHARD_HELP),
    batch_size: int = typer.Option(64, help="People simulated between two checks for a flush."),
    flush_every: int = typer.Option(1024, help=FLUSH_HELP),
    root: Path = typer.Option(None, help="Synthetic dataset root with objects.csv (default: DATA's folder)."),
    split: str = typer.Option("train", help="Split folder for tree formats."),
    format: str = typer.Option(None, "--format", "-f", help="Annotation format (default: detect)."),
) -> None:
    """Simulated Grad-CAM priors for a synthetic dataset, with recorded quality parameters."""
    from gazelab.priors.simulate import SimulationParams, load_objects, simulator

    params = SimulationParams(p_correct, jitter, blob_scale, head_weight, noise, grid, p_invalid, seed,
                              missed_target_weight).validate()  # fmt: skip
    options = _data_options(format, root, split, batch_size, flush_every)
    _generate("simulate", data, out, params.meta(), shard, lambda r: simulator(load_objects(r), params), options)


@prior_app.command("run")
def run(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Prior store folder (created, or resumed if it exists)."),
    model: str = typer.Option("Salesforce/blip-vqa-base", help="Hugging Face id or local folder of a BLIP VQA model."),
    layers: str = typer.Option("-3,-2,-1", help="Text-decoder layers whose cross-attention CAMs are averaged."),
    question: str = typer.Option(None, help="Question (default: the GCDR one about the green bounding box)."),
    box: str = typer.Option("body", help="Box drawn in green: body (head box expanded when none) or head."),
    beams: int = typer.Option(3, help="Beam width when decoding the answer."),
    max_answer_tokens: int = typer.Option(10, help="Longest answer decoded, in tokens."),
    batch_size: int = typer.Option(8, help="People per forward/backward pass (across images)."),
    flush_every: int = typer.Option(64, help=FLUSH_HELP),
    device: str = typer.Option("cpu", help="torch device, e.g. cuda."),
    shard: str = typer.Option(None, help=SHARD_HELP),
    root: Path = typer.Option(None, help="Dataset root the image paths are relative to (default: DATA's folder)."),
    split: str = typer.Option("train", help="Split folder for tree formats."),
    format: str = typer.Option(None, "--format", "-f", help="Annotation format (default: detect)."),
) -> None:
    """VQA Grad-CAM priors: ask a BLIP VQA model what each person looks at and keep where it looked."""
    from gazelab.priors.gradcam import CamSettings, parse_layers
    from gazelab.priors.keynoun import key_noun_method
    from gazelab.priors.vqa import DEFAULT_QUESTION, GradCamPrior, load_blip

    settings = CamSettings(parse_layers(layers), question or DEFAULT_QUESTION, box, beams, max_answer_tokens)
    meta = {"kind": "gradcam", "model": model, "key_noun": key_noun_method(), **settings.meta()}
    options = _data_options(format, root, split, batch_size, flush_every)

    def produce_for(_: Path) -> GradCamPrior:
        return GradCamPrior(load_blip(model, device, settings), settings)

    _generate("prior", data, out, meta, shard, produce_for, options)


@prior_app.command("merge")
def merge(
    stores: list[Path] = typer.Argument(..., help="Stores to merge (e.g. the --shard parts of one job)."),
    out: Path = typer.Option(..., "--out", "-o", help="New (or earlier merged) store folder."),
) -> None:
    """Merge stores made with the same parameters into one."""
    from gazelab.priors.store import PriorStore, merge_stores

    merged = merge_stores([PriorStore(s) for s in stores], out)
    _console().print(f"merged {len(stores)} stores into {out}: {len(merged)} priors", highlight=False)


@prior_app.command("check")
def check(store: Path = typer.Argument(..., help="Prior store folder.")) -> None:
    """Verify checksums, shapes and value ranges of every shard (exit 1 on a problem)."""
    from gazelab.priors.store import PriorStore

    prior_store = PriorStore(store)
    report = prior_store.check()
    console = Console()
    console.print(f"{store}: {report.records} priors in {report.shards} shards, kind {prior_store.meta.get('kind')}",
                  highlight=False)  # fmt: skip
    for line in report.warnings:
        console.print(f"warning: {line}", highlight=False)
    for line in report.problems:
        console.print(f"[bold red]problem:[/] {line}", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)
    console.print("[green]store is intact[/]")


@prior_app.command("report")
def report(
    store: Path = typer.Argument(..., help="Prior store folder."),
    data: Path = typer.Option(..., "--data", help=DATA_HELP + " Labelled people are scored."),
    protocol: str = typer.Option("gazefollow-64", help="Evaluation protocol (gazefollow-64 needs no images)."),
    root: Path = typer.Option(None, help="Dataset root the image paths are relative to."),
    split: str = typer.Option("train", help="Split folder for tree formats."),
    format: str = typer.Option(None, "--format", "-f", help="Annotation format (default: detect)."),
) -> None:
    """Score the raw priors against the ground truth (AUC, distances) — to choose layers and questions."""
    from gazelab.priors.report import score_priors
    from gazelab.priors.sources import load_frames
    from gazelab.priors.store import PriorStore

    frames, _ = load_frames(data, format=format, root=root, split=split)
    result = score_priors(PriorStore(store), frames, protocol)
    typer.echo(result.markdown(title=str(store)))
    for note in result.notes:
        typer.echo(f"note: {note}")


@prior_app.command("import-pickle")
def import_pickle(
    file: Path = typer.Argument(..., help="Reference GCDR Grad-CAM pickle (gradcams_train_person.pkl layout)."),
    data: Path = typer.Option(..., "--data", help="The GazeFollow annotation file the pickle was made for."),
    out: Path = typer.Option(..., "--out", "-o", help="New prior store folder."),
    layer: str = typer.Option("10th_layer", help="Which stored layer to import (GCDR used 10th_layer)."),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Required: unpickling can run code from FILE."),
    root: Path = typer.Option(None, help="Dataset root the image paths are relative to."),
) -> None:
    """Convert the reference implementation's pickle of Grad-CAM maps into a prior store (trusted files only)."""
    from gazelab.priors.pickle_import import import_reference_pickle
    from gazelab.priors.sources import load_frames

    if not trust_pickle:
        raise GazelabError(f"{file}: loading a pickle can run arbitrary code — pass --trust-pickle only for a file "
                           "you trust")  # fmt: skip
    frames, _ = load_frames(data, root=root)
    store, unmatched = import_reference_pickle(file, frames, out, layer)
    _console().print(f"imported {len(store)} priors from {file} into {out}; {unmatched} entries matched no person "
                     f"of {data}", highlight=False)  # fmt: skip
