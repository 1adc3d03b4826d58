"""GCDR's table on the synthetic benchmark: students by pseudo-label source x labelled fraction, several seeds.

Rows (see :mod:`gazelab.semisup.pipeline`): ``supervised`` (labelled part only), ``raw`` (raw prior as target),
``argmax`` (Gaussian at the prior's peak), ``gcdr`` (diffusion-refined priors), ``full`` (every label). Every
student trains for the same number of steps on the same labelled batches; the pseudo-label rows add unlabelled
people to each batch. Per fraction and seed: one split, one diffusion teacher, one refinement; then the t_start
ablation (GCDR students on priors refined from t_start 100/200/250/300/400, see :data:`T_STARTS` for their
steps) at the middle fraction. Priors are simulated (``gazelab prior simulate``; quality in the store's
metadata), so the absolute numbers describe this simulation, not VQA Grad-CAM on real photos.

    gazelab synth --out data/bench --preset benchmark --workers 2 --priors
    python benchmarks/semisup_synthetic.py --data data/bench [--seeds 0 1 2] [--fractions 0.05 0.1 0.2]
        [--steps 1500] [--out runs/semisup_synthetic] [--no-ablation] [--guide] [--teacher-epochs 20]
        [--scheduler cosine|constant] [--teacher-from runs/earlier] [--teacher-distractors 0.5]
        [--device auto|cpu|cuda] [--workers 0] [--refine-samples 1]

A (fraction, seed) whose ``results.json`` is already in ``--out`` is read, not run again, so a long table can
be filled over several invocations (same data and settings; results made with other ``--steps``,
``--teacher-epochs``, ``--guide``, ``--teacher-distractors``, ``--refine-samples`` or ``--scheduler`` are
refused; results that predate ``--scheduler`` were made with ``constant``, those that predate
``--teacher-distractors`` with 0, those that predate ``--refine-samples`` with 1). A finished seed
that lacks the ablation gets only the ablation, from the teacher it saved. Within a (fraction, seed), every stage
is kept as soon as it is done (each student's ``student.pt`` and ``scores.json``, the guides, the teacher's
checkpoint, the refined pseudo-labels), so a stopped run starts again at the stage it was in; ``settings.json``
refuses a resume with other settings. ``--device`` and ``--workers`` are not settings of a run: each
``results.json`` records the device of the invocation that finished it (rows made on different devices differ
by float rounding, which students amplify, so compare rows of one device). The fully supervised student does
not depend on the split: it trains once per seed (``full_s<seed>``) and serves every fraction.

``--teacher-from`` trains only the students: each (fraction, seed) takes the refined pseudo-labels and the
diffusion teacher of that (fraction, seed) in an earlier ``--out`` (same data; its ``--guide`` and
``--teacher-epochs`` must match), so student settings (``--steps``, ``--scheduler``) can change without training
the teacher again. The split is the same because it is drawn from the seed. The teacher's guides were that run's
supervised-only students, so its results record which run and student settings the teacher came from.

Prints one table per metric (mean +- spread over seeds), GCDR's margin over each rival (mean, and per seed:
the seeds share a split and a labelled stream, so the per-seed differences are the paired comparison), and
whether GCDR beats supervised-only and both simple priors at every fraction beyond the seed spread (two seeds
or more). Last line: ``RESULT semisup_synthetic`` followed by ``<row>_<fraction>_auc=..`` and
``<row>_<fraction>_avg_l2=..`` pairs (means over seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from gazelab.device import resolve_device
from gazelab.errors import GazelabError
from gazelab.priors.simulate import SimulationParams, write_simulated_priors
from gazelab.semisup import pipeline

T_STARTS = {100: 2, 200: 2, 250: 2, 300: 3, 400: 4}
"""t_start -> DDIM steps. GCDR uses 2 steps; a 500-step DDIM schedule (diffusers) only takes strides 500 // n, so
t_start 300 and 400 run 3 and 4 steps (stride 100, as 200 / 2)."""
METRICS = ("auc", "avg_l2", "min_l2")
DEFAULTS = {"steps": None, "teacher_epochs": 20, "guide": False, "scheduler": None, "teacher_from": None,
            "teacher_distractors": 0.0, "refine_samples": 1}  # fmt: skip
"""Run settings a ``results.json`` without them was made with (``steps`` was always recorded)."""


def t_start_for(fraction: float) -> int:
    """GCDR's setting: 200 with 5 % labels, 250 otherwise."""
    return 200 if fraction <= 0.05 else 250


def run_config(fraction: float, seed: int, settings: dict) -> pipeline.PipelineConfig:
    config = pipeline.PipelineConfig(
        fraction=fraction,
        seed=seed,
        student_steps=settings["steps"],
        t_start=t_start_for(fraction),
        diffusion_epochs=settings["teacher_epochs"],
        diffusion_distractors=settings["teacher_distractors"],
        student_scheduler=settings["scheduler"],
        refine_samples=settings["refine_samples"],
    )
    if settings["guide"]:
        config.diffusion["encoder_guide"] = "gazelle_synth"
    return config


def teacher_source(source: Path, settings: dict) -> dict:
    """What a students-only run needs to know of the earlier run whose teacher it reuses (``--teacher-from``)."""
    done = source / "results.json"
    if not (done.is_file() and (source / "refined").is_dir()):
        raise SystemExit(f"{source}: no finished run there (results.json and refined/) — run it first, or drop "
                         "--teacher-from")  # fmt: skip
    made = json.loads(done.read_text())
    for key in ("guide", "teacher_epochs", "teacher_distractors", "refine_samples"):
        if made.get(key, DEFAULTS[key]) != settings[key]:
            raise SystemExit(f"{done}: its teacher was made with {key}={made.get(key, DEFAULTS[key])}, not "
                             f"{settings[key]} — pass the same {'--' + key.replace('_', '-')}")  # fmt: skip
    return {"path": str(source), "student_steps": made["steps"], "student_scheduler": made.get("scheduler")}


def claim(folder: Path, settings: dict) -> None:
    """Mark ``folder`` as made with ``settings`` (``settings.json``), or refuse it when it was made with others:
    the stages below reuse what a folder holds, so a stopped run resumes only with the settings it began with."""
    folder.mkdir(parents=True, exist_ok=True)
    mark = folder / "settings.json"
    if mark.is_file():
        made = json.loads(mark.read_text())
        made = {**{key: DEFAULTS[key] for key in settings if key not in made and key in DEFAULTS}, **made}
        if made != settings:
            raise SystemExit(f"{mark}: made with {made}, not {settings} — use another --out")
    mark.write_text(json.dumps(settings, indent=2))


def student_scores(files: pipeline.SplitFiles, row: str, stores: dict, out: Path, config) -> dict[str, float]:
    """One row's test scores, its student trained at most once: the student's weights (``student.pt``) and
    scores (``scores.json``) are written as soon as it is done, so a stopped run resumes at the next student."""
    from gazelab.train.export import official_state_dict, save_weights

    done = out / "scores.json"
    if done.is_file():
        return json.loads(done.read_text())
    model = pipeline.train_student(files, row, stores, out, config)
    save_weights(official_state_dict(model, include_backbone=True), out / "student.pt")
    scores = pipeline.evaluate(model, files, config.device)
    done.write_text(json.dumps(scores, indent=2))
    return scores


def guides(files: pipeline.SplitFiles, out: Path, config: pipeline.PipelineConfig) -> pipeline.Guides:
    """The teacher's guides in ``out / "guides"``: reused when all are there, else trained from the saved
    supervised-only student (:func:`student_scores` wrote it)."""
    from gazelab.models import create_model

    folder = out / "guides"
    weights = [folder / "full.pt", *(folder / f"fold{k}.pt" for k in range(config.guide_folds))]
    if all(path.is_file() for path in weights):
        return pipeline.Guides(weights[0], weights[1:])
    supervised = create_model(config.student, pretrained=out / "supervised" / "student.pt").eval()
    return pipeline.train_guides(files, folder, config, supervised)


def teacher_model(files: pipeline.SplitFiles, out: Path, config: pipeline.PipelineConfig):
    """The diffusion teacher of ``out``: loaded when its checkpoint is there (written once training ends)."""
    from gazelab.gcdr.official import load_diffusion

    checkpoint = out / "diffusion" / "diffusion.ckpt"
    if checkpoint.is_file():
        return load_diffusion(checkpoint)
    return pipeline.train_diffusion(
        files, out / "diffusion", config, guides(files, out, config) if pipeline.guided(config) else None
    )


def run_seed(
    data: Path, out: Path, full: Path, config: pipeline.PipelineConfig, teacher: Path | None = None
) -> dict[str, dict]:
    """Every row for one (fraction, seed), each stage resumable (see :func:`student_scores`). The teacher stays in
    ``out/diffusion`` for the ablation; with ``teacher`` (an earlier run's folder for this fraction and seed) its
    pseudo-labels are used instead. ``full``: the fully supervised row's folder, shared by every fraction of the
    seed (it trains on every label, so the split does not change it)."""
    files = pipeline.split_dataset(data, out / "split", config)
    if teacher and files.labelled.read_text() != (teacher / "split" / files.labelled.name).read_text():
        raise SystemExit(f"{teacher}: its labelled split differs from this one — was it made from other --data?")
    refined = (teacher or out) / "refined"
    stores = {"prior": files.priors, "gcdr": refined}
    results = {"supervised": student_scores(files, "supervised", stores, out / "supervised", config)}
    if teacher is None:
        pipeline.refine_priors(files, teacher_model(files, out, config), refined, config)
    for row in ("gcdr", "argmax", "raw"):
        results[row] = student_scores(files, row, stores, out / row, config)
    results["full"] = student_scores(files, "full", stores, full, config)
    results["pseudo_labels"] = {"raw": pipeline.evaluate_store(files.priors, files),
                                "gcdr": pipeline.evaluate_store(refined, files)}  # fmt: skip
    return results


def run_ablation(
    data: Path, out: Path, config: pipeline.PipelineConfig, results: dict, teacher: Path | None = None
) -> dict[str, dict]:
    """GCDR students on priors refined from each of :data:`T_STARTS` by the teacher :func:`run_seed` saved (so a
    finished seed gets its ablation without training anything else again). The t_start the GCDR row already
    used is that row, not a second run of it. ``teacher``: as in :func:`run_seed`."""
    from gazelab.gcdr.official import load_diffusion

    files = pipeline.split_dataset(data, out / "split", config)
    model = load_diffusion((teacher or out) / "diffusion" / "diffusion.ckpt")
    ablation = {}
    for t_start, steps in T_STARTS.items():
        if (t_start, steps) == (config.t_start, config.steps):
            ablation[f"gcdr_t{t_start}"] = results["gcdr"]
            continue
        refined = out / f"refined_t{t_start}"
        ablated = replace(config, t_start=t_start, steps=steps)
        pipeline.refine_priors(files, model, refined, ablated)
        ablation[f"gcdr_t{t_start}"] = student_scores(
            files, "gcdr", {"gcdr": refined}, out / f"gcdr_t{t_start}", ablated
        )
        ablation[f"pseudo_labels_t{t_start}"] = pipeline.evaluate_store(refined, files)
    return ablation


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--workers``, shared with ``semisup_cost.py``: where every stage runs, not a run setting."""
    parser.add_argument("--device", default="auto", help="where to train and predict: auto (the GPU if any), cpu, cuda")
    parser.add_argument("--workers", type=int, default=0,
                        help="data-loading processes while training (0 on a CPU; a few on a GPU)")  # fmt: skip


def checked_device(args: argparse.Namespace) -> str:
    """The device of ``--device``, checked before any work (a one-line exit when unusable or ``--workers`` < 0)."""
    try:
        device = str(resolve_device(args.device))
    except GazelabError as err:
        raise SystemExit(str(err)) from None
    if args.workers < 0:
        raise SystemExit(f"--workers {args.workers}: give 0 (load in the training process) or more")
    return device


def spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `gazelab synth --preset benchmark` folder")
    parser.add_argument("--out", type=Path, default=Path("runs/semisup_synthetic"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--steps", type=int, default=1500, help="training steps of every student")
    parser.add_argument("--p-correct", type=float, default=0.6, help="simulated prior quality (if not there yet)")
    parser.add_argument("--missed-target-weight", type=float, default=0.0,
                        help="weight of the true target's blob in a wrong prior (if not there yet)")  # fmt: skip
    parser.add_argument("--teacher-epochs", type=int, default=20, help="epochs of the diffusion teacher")
    parser.add_argument("--guide", action="store_true",
                        help="condition the teacher on the supervised-only student (gazelab.gcdr.guide)")  # fmt: skip
    parser.add_argument("--teacher-distractors", type=float, default=0.0,
                        help="share of the teacher's training maps given a second, random blob before noising "
                             "(gazelab.gcdr.corrupt; not in GCDR)")  # fmt: skip
    parser.add_argument("--refine-samples", type=int, default=1,
                        help="refinement draws averaged per pseudo-label (GCDR: 1)")  # fmt: skip
    parser.add_argument("--no-ablation", action="store_true", help="skip the t_start ablation")
    parser.add_argument("--scheduler", choices=("cosine", "constant"), default="cosine",
                        help="the students' learning rate over their steps (and the teacher's guides')")  # fmt: skip
    parser.add_argument("--teacher-from", type=Path,
                        help="an earlier --out: reuse its teachers and pseudo-labels; only students train")  # fmt: skip
    add_device_arguments(parser)
    args = parser.parse_args()
    device = checked_device(args)
    if not (args.data / "priors" / "meta.json").is_file():
        params = SimulationParams(p_correct=args.p_correct, missed_target_weight=args.missed_target_weight)
        write_simulated_priors(args.data, params)
    scheduler = None if args.scheduler == "constant" else args.scheduler
    settings = {"steps": args.steps, "teacher_epochs": args.teacher_epochs, "guide": args.guide, "scheduler": scheduler,
                "teacher_from": str(args.teacher_from) if args.teacher_from else None,
                "teacher_distractors": args.teacher_distractors, "refine_samples": args.refine_samples}  # fmt: skip
    start = time.perf_counter()
    middle = sorted(args.fractions)[len(args.fractions) // 2]
    runs: dict[float, list[dict]] = {}
    for fraction in args.fractions:
        for seed in args.seeds:
            out = args.out / f"f{fraction:g}_s{seed}"
            ablation = not args.no_ablation and fraction == middle and seed == args.seeds[0]
            done = out / "results.json"
            result = json.loads(done.read_text()) if done.is_file() else {}
            made = {k: result.get(k, DEFAULTS[k]) for k in settings}
            if result and made != settings:
                raise SystemExit(f"{done}: made with {made}, not {settings} — use another --out")
            config = replace(run_config(fraction, seed, settings), device=device, workers=args.workers)
            teacher = args.teacher_from / out.name if args.teacher_from else None
            if not result:
                source = {"teacher": teacher_source(teacher, settings)} if teacher else {}
                full = args.out / f"full_s{seed}"
                claim(out, settings)
                claim(full, {key: settings[key] for key in ("steps", "scheduler")})
                result = {**settings, **source, **run_seed(args.data, out, full, config, teacher), "device": device}
                done.write_text(json.dumps(result, indent=2))
            if ablation and "gcdr_t100" not in result:
                result.update(run_ablation(args.data, out, config, result, teacher))
                done.write_text(json.dumps(result, indent=2))
            runs.setdefault(fraction, []).append(result)
            scores = ", ".join(f"{row} {result[row]['auc']:.3f}/{result[row]['avg_l2']:.3f}" for row in pipeline.ROWS)
            print(f"fraction {fraction:g} seed {seed} (auc/avg_l2): {scores}", flush=True)
    result_items = []
    for metric in METRICS:
        print(f"\n{metric} (mean +- sd over seeds {args.seeds})")
        print(f"{'row':>12} " + " ".join(f"{f:>16g}" for f in args.fractions))
        for row in pipeline.ROWS:
            cells = []
            for fraction in args.fractions:
                values = [r[row][metric] for r in runs[fraction]]
                cells.append(f"{statistics.mean(values):.4f} +- {spread(values):.4f}")
                if metric != "min_l2":
                    result_items.append(f"{row}_{fraction:g}_{metric}={statistics.mean(values):.4f}")
            print(f"{row:>12} " + " ".join(f"{c:>16}" for c in cells))
    verdicts = []
    for fraction in args.fractions:
        for metric, better in (("auc", 1), ("avg_l2", -1)):
            gcdr = [r["gcdr"][metric] for r in runs[fraction]]
            for rival in ("supervised", "raw", "argmax"):
                other = [r[rival][metric] for r in runs[fraction]]
                margin = better * (statistics.mean(gcdr) - statistics.mean(other))
                verdicts.append(margin > spread(gcdr) + spread(other))
                paired = [better * (g - o) for g, o in zip(gcdr, other)]
                print(f"fraction {fraction:g} {metric}: gcdr vs {rival}: margin {margin:+.4f} "
                      f"(spreads {spread(gcdr):.4f}, {spread(other):.4f}); per seed "
                      f"{' '.join(f'{d:+.4f}' for d in paired)}, better in {sum(d > 0 for d in paired)}"
                      f"/{len(paired)}")  # fmt: skip
    ablated = [r for r in runs.get(middle, []) if "gcdr_t100" in r]
    if ablated:
        print(f"\nt_start ablation at {middle:g} labels (seed {args.seeds[0]}; student auc / avg_l2, and its "
              "pseudo-labels' against the hidden truth):")  # fmt: skip
        for t_start, steps in T_STARTS.items():
            student = ablated[0][f"gcdr_t{t_start}"]
            labels = ablated[0].get(f"pseudo_labels_t{t_start}", ablated[0]["pseudo_labels"]["gcdr"])
            print(f"  t{t_start} ({steps} steps): student {student['auc']:.4f} / {student['avg_l2']:.4f}, "
                  f"pseudo-labels {labels['auc']:.4f} / {labels['avg_l2']:.4f}")  # fmt: skip
    verdict = "met" if all(verdicts) else "NOT met"
    if len(args.seeds) < 2:
        verdict = "not decided (one seed has no spread: run two or more)"
    print(f"\ntarget (GCDR beats supervised-only and both simple priors everywhere, beyond the seed spread): "
          f"{verdict}; minutes {(time.perf_counter() - start) / 60:.1f}")  # fmt: skip
    print("RESULT semisup_synthetic " + " ".join(result_items))


if __name__ == "__main__":
    main()
