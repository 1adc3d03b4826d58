"""The embedded main job: GCDR semi-supervised training end to end on generated data, no download.

Synthetic scenes with simulated Grad-CAM priors -> a seeded 10 % labelled split -> the heatmap diffusion
teacher trained on the labelled part -> refined pseudo-labels for the unlabelled part -> a student trained on
labels + pseudo-labels (GCDR) next to the same student trained on the labels alone, for the same number of
steps -> both evaluated on the test split with the ``gazefollow`` protocol, next to the centre prior ->
``report.md`` with the metric table and pseudo-label examples (prior, refined map, truth). A few minutes on a
laptop CPU; the stages are those of :mod:`gazelab.semisup.pipeline`, which the full benchmark
(``benchmarks/semisup_synthetic.py``) runs at scale.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gazelab.errors import GazelabError
from gazelab.semisup.pipeline import PROTOCOL, PipelineConfig

EXAMPLES = 4
"""Unlabelled people shown in the pseudo-label figure."""


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; the defaults finish in a few minutes on 2 CPU cores."""

    images: int = 600
    fraction: float = 0.1
    student_steps: int = 300
    diffusion_epochs: int = 30
    p_correct: float = 0.6
    missed_target_weight: float = 0.0
    """A wrong prior keeps a blob of this weight on the true target (a real Grad-CAM is often warm on several
    objects; the benchmark's setting is 0.5). 0: one blob."""
    guide: bool = False
    """Condition the teacher on the supervised-only student (``gazelab.gcdr.guide``; two cross-fitted students
    more), as ``benchmarks/semisup_synthetic.py --guide`` does. Off by default: with the benchmark's setting
    (two-blob prior, guide, cosine) the demo's 300-step students still do not show GCDR's gain, and the two extra
    students cost time (measured: docs/gcdr.md, "`gazelab demo`, measured")."""
    teacher_distractors: float = 0.0
    """Share of the teacher's training maps given a second, random blob before noising (``gazelab.gcdr.corrupt``;
    not in GCDR): teaches it to choose between the blobs of a two-blob prior."""
    scheduler: str | None = None
    """The students' learning rate over their steps: None keeps it constant, ``cosine`` anneals it to 0."""
    seed: int = 0
    device: str = "auto"
    """Where to train and predict (:attr:`gazelab.semisup.pipeline.PipelineConfig.device`)."""
    workers: int = 0
    """Data-loading processes of the training stages (0 on a CPU)."""


def _table(rows: dict[str, dict[str, float]], title: str) -> Table:
    table = Table(title=title)
    for column in ("method", "AUC", "Avg L2", "Min L2"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, metrics in rows.items():
        table.add_row(name, *(f"{metrics[k]:.4f}" for k in ("auc", "avg_l2", "min_l2")))
    return table


def _markdown(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| method | AUC | Avg L2 | Min L2 |", "|---|---|---|---|"]
    lines += [f"| {n} | {m['auc']:.4f} | {m['avg_l2']:.4f} | {m['min_l2']:.4f} |" for n, m in rows.items()]
    return "\n".join(lines)


def _examples(files, prior_dir: Path, refined_dir: Path, out: Path, count: int = EXAMPLES) -> Path:
    """A figure: per unlabelled in-frame person, the prior, the refined pseudo-label and the (hidden) truth."""
    from PIL import Image

    from gazelab.data.formats import read_annotations
    from gazelab.io import load_image
    from gazelab.priors.store import PriorStore, person_key
    from gazelab.viz import draw_annotations, draw_gaze, heatmap_overlay

    priors, refined = PriorStore(prior_dir), PriorStore(refined_dir)
    tiles = []
    for frame in read_annotations(files.unlabelled, root=files.root):
        for i, person in enumerate(frame.people):
            key = person_key(frame, i)
            prior, label = priors.get(*key), refined.get(*key)
            if not person.inout or prior is None or label is None or not label.valid:
                continue
            image = load_image(frame.image_path)
            head = [(person.head, None, "")]
            tiles.append([
                draw_gaze(heatmap_overlay(image, prior.heatmap.astype("float32")), head),
                draw_gaze(heatmap_overlay(image, label.heatmap.astype("float32")), head),
                draw_annotations(image, [person]),
            ])  # fmt: skip
            break
        if len(tiles) == count:
            break
    width, height = tiles[0][0].size
    sheet = Image.new("RGB", (3 * width, len(tiles) * height), "white")
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            sheet.paste(tile, (c * width, r * height))
    path = out / "pseudo_labels.png"
    sheet.save(path)
    return path


def run_demo(out: Path, config: DemoConfig = DemoConfig(), console: Console | None = None) -> dict[str, float]:
    """Run the whole flow into ``out`` and return the headline figures (also in ``out/summary.json``)."""
    from gazelab.data.formats import read_annotations
    from gazelab.data.synthetic import preset, write_dataset
    from gazelab.eval.baselines import make_baseline
    from gazelab.eval.metrics import get_protocol
    from gazelab.eval.predictions import targets_from_frames
    from gazelab.infer.predictor import Predictor
    from gazelab.io import load_image
    from gazelab.priors.simulate import SimulationParams, write_simulated_priors
    from gazelab.semisup import pipeline
    from gazelab.train.export import official_state_dict, save_weights
    from gazelab.viz import draw_annotations, draw_predictions

    console = console or Console()
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "summary.json").exists() and not (out / "data").exists():
        raise GazelabError(f"{out}: folder exists and is not an earlier demo output — choose another --out")
    data = out / "data"
    run = PipelineConfig(fraction=config.fraction, seed=config.seed, student_steps=config.student_steps,
                         diffusion_epochs=config.diffusion_epochs, student_scheduler=config.scheduler,
                         diffusion_distractors=config.teacher_distractors, device=config.device,
                         workers=config.workers)  # fmt: skip
    if config.guide:
        run.diffusion["encoder_guide"] = run.student

    console.rule("1. synthetic data (benchmark scenes) with simulated Grad-CAM priors")
    write_dataset(data, preset("benchmark", images=config.images, seed=config.seed), preset_name="benchmark")
    params = SimulationParams(p_correct=config.p_correct, missed_target_weight=config.missed_target_weight,
                              seed=config.seed)  # fmt: skip
    write_simulated_priors(data, params)
    train = read_annotations(data / "train_annotations_release.txt")
    test = read_annotations(data / "test_annotations_release.txt")
    for name, frames in (("train", train), ("test", test)):
        console.print(f"{name}: {len(frames)} images, {frames.num_people} people — {frames.report.summary()}")

    console.rule(f"2. labelled/unlabelled split ({config.fraction:.0%} labelled, by image)")
    files = pipeline.split_dataset(data, out / "split", run)
    console.print(f"-> {files.labelled}, {files.unlabelled} (the unlabelled side is read with its labels hidden)")

    console.rule(f"3. supervised-only student on the labelled part ({config.student_steps} steps)")
    stores = {"prior": files.priors, "gcdr": out / "refined"}
    students = {"supervised": pipeline.train_student(files, "supervised", stores, out / "student_supervised", run)}
    guides = None
    if pipeline.guided(run):
        guides = pipeline.train_guides(files, out / "guides", run, students["supervised"])
        console.print(f"the teacher's guide: this student, and {run.guide_folds} cross-fitted ones -> {out / 'guides'}")

    console.rule(f"4. diffusion teacher on the labelled part ({config.diffusion_epochs} epochs)")
    model = pipeline.train_diffusion(files, out / "diffusion", run, guides)
    console.print(f"checkpoint: {out / 'diffusion' / 'diffusion.ckpt'}")

    console.rule(f"5. refine the priors of unlabelled people (t_start {run.t_start}, {run.steps} DDIM steps)")
    refined = pipeline.refine_priors(files, model, out / "refined", run)
    quality = {"raw prior": pipeline.evaluate_store(files.priors, files),
               "refined (GCDR)": pipeline.evaluate_store(out / "refined", files)}  # fmt: skip
    title = "pseudo-labels vs the hidden truth of unlabelled people (gazefollow-64, report only)"
    console.print(_table(quality, title))
    console.print(f"{len(refined)} pseudo-labels -> {out / 'refined'}")

    console.rule(f"6. GCDR student: labels + refined pseudo-labels ({config.student_steps} steps)")
    students["gcdr"] = pipeline.train_student(files, "gcdr", stores, out / "student_gcdr", run)
    weights = save_weights(official_state_dict(students["gcdr"], include_backbone=True), out / "gazelle_synth.pt")

    console.rule(f"7. evaluate on the test split (protocol {PROTOCOL})")
    gcdr_row, supervised_row = (f"GCDR student ({config.fraction:.0%} labels + refined pseudo-labels)",
                                f"supervised-only student ({config.fraction:.0%} labels)")  # fmt: skip
    rows = {gcdr_row: pipeline.evaluate(students["gcdr"], files, run.device),
            supervised_row: pipeline.evaluate(students["supervised"], files, run.device)}  # fmt: skip
    targets = targets_from_frames(test)
    center = make_baseline("center", len(targets), None, config.seed)
    rows["baseline: centre prior"] = get_protocol(PROTOCOL).evaluate(targets, heatmaps=center.heatmaps).summary
    console.print(_table(rows, f"synthetic test split, protocol {PROTOCOL}"))

    console.rule("8. figures")
    figure = _examples(files, files.priors, out / "refined", out)
    frame = max(test, key=lambda f: len(f.people))
    predictor = Predictor(students["gcdr"])
    predictor.set_image(frame.image_path)
    image = load_image(frame.image_path)
    draw_predictions(image, predictor.predict([p.head for p in frame.people])).save(out / "prediction.png")
    draw_annotations(image, frame.people).save(out / "ground_truth.png")
    console.print(f"{figure}, {out / 'prediction.png'} (truth: ground_truth.png), weights {weights}")

    minutes = (time.perf_counter() - start) / 60
    gcdr, supervised = rows[gcdr_row], rows[supervised_row]
    summary = {"auc_gcdr": gcdr["auc"], "auc_supervised": supervised["auc"], "avg_l2_gcdr": gcdr["avg_l2"],
               "avg_l2_supervised": supervised["avg_l2"], "minutes": minutes}  # fmt: skip
    (out / "summary.json").write_text(
        json.dumps({"config": asdict(config), "results": rows, "pseudo_labels": quality, **summary}, indent=2)
    )
    teacher = f"{config.diffusion_epochs} epochs"
    if config.guide:
        teacher += ", guided by the supervised-only student (cross-fitted)"
    if config.teacher_distractors:
        teacher += f", {config.teacher_distractors:.0%} of its training maps with a distractor blob"
    (out / "report.md").write_text(
        "# gazelab demo: GCDR on synthetic data\n\n"
        f"`benchmark` scenes, {config.images} images (seed {config.seed}), simulated Grad-CAM priors "
        f"(p_correct {config.p_correct}, missed_target_weight {config.missed_target_weight}); "
        f"{config.fraction:.0%} of the training images labelled. Teacher: {teacher}; refinement from "
        f"t_start {run.t_start}, {run.steps} DDIM steps. Students: `{run.student}`, {config.student_steps} steps "
        f"each ({config.scheduler or 'constant'} learning rate), batches of {run.labelled_per_batch} labelled + "
        f"{run.unlabelled_per_batch} unlabelled people (supervised-only: the same labelled people per batch, "
        f"without the unlabelled ones). Protocol `{PROTOCOL}` on the test split.\n\n{_markdown(rows)}\n\n"
        "## Pseudo-labels of unlabelled people against their hidden truth (`gazefollow-64`)\n\n"
        f"{_markdown(quality)}\n\nColumns: prior, refined pseudo-label, truth.\n\n"
        "![pseudo-labels](pseudo_labels.png)\n\n"
        "## GCDR student on a test scene\n\n![prediction](prediction.png) ![ground truth](ground_truth.png)\n"
    )
    console.print(f"report: {out / 'report.md'}")
    if not all(math.isfinite(v) for v in summary.values()):
        raise GazelabError("demo produced a non-finite metric — see the log above")
    return summary
