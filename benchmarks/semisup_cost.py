"""What one (fraction, seed) of ``benchmarks/semisup_synthetic.py`` costs on a device, measured in minutes.

Times every stage of the benchmark's run on a small generated set, on the device asked for, and scales each to
the sizes of the benchmark's data: a student optimiser step (labelled batch; two-stream batch of the
pseudo-label rows), an epoch of the guided diffusion teacher per labelled in-frame person, a refined
pseudo-label per unlabelled person, a test prediction per person. Each rate is the difference of two runs of
different length divided by the difference in work, so set-up and tear-down cancel. The projection adds the
stages of one (fraction, seed) as the benchmark runs them with ``--guide``: the supervised-only student, two
cross-fitted guide students, the teacher, the refinement, the GCDR / argmax / raw students, the fully
supervised student (once per seed, shared by the fractions) and five test evaluations.

Use it before a long run (how many seeds fit in a budget, and at how many ``--steps``), and on a GPU machine to
size the runs that decide the benchmark's target there. Weights are random: a step costs the same.

    python benchmarks/semisup_cost.py [--device auto] [--workers 0] [--threads N] [--data data/bench]
        [--fraction 0.2] [--steps 1500] [--teacher-epochs 20] [--timing-images 120]

``--data``: a ``gazelab synth --preset benchmark`` folder to count people in; without it the counts are the
preset's image count times the people per image of the timing set. Last line: ``RESULT semisup_cost
student_step_s=.. twostream_step_s=.. teacher_ms_per_person_epoch=.. refine_ms_per_person=.. eval_ms_per_person=..
minutes=..`` (``minutes``: the projected (fraction, seed), fully supervised student included; the device is on
the line before the table).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from semisup_synthetic import add_device_arguments, checked_device, run_config

from gazelab.data.formats import read_annotations
from gazelab.data.synthetic import preset, write_dataset
from gazelab.models import create_model
from gazelab.priors.simulate import SimulationParams, write_simulated_priors
from gazelab.semisup import pipeline
from gazelab.train.export import official_state_dict, save_weights


def seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def rate(work, short: int, long: int) -> float:
    """Seconds per unit of ``work(n)``: (time of ``long`` units - time of ``short``) / (long - short)."""
    return (seconds(lambda: work(long)) - seconds(lambda: work(short))) / (long - short)


def people(path: Path) -> tuple[int, int]:
    """(people, people looking inside the frame) of an annotation file."""
    frames = read_annotations(path)
    every = [person for frame in frames for person in frame.people]
    return len(every), sum(bool(person.inout) for person in every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_arguments(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--data", type=Path, help="a benchmark folder to take the people counts from")
    parser.add_argument("--fraction", type=float, default=0.2, help="labelled fraction of the projected run")
    parser.add_argument("--steps", type=int, default=1500, help="student steps of the projected run")
    parser.add_argument("--teacher-epochs", type=int, default=20, help="teacher epochs of the projected run")
    parser.add_argument("--timing-images", type=int, default=120, help="images of the timing set")
    args = parser.parse_args()
    device = checked_device(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {"steps": 10, "teacher_epochs": 1, "guide": True, "scheduler": "cosine", "teacher_distractors": 0.5}
    config = replace(run_config(0.5, 0, settings), device=device, workers=args.workers)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "data", preset("benchmark", images=args.timing_images, seed=0), preset_name="benchmark")
        write_simulated_priors(root / "data", SimulationParams(p_correct=0.6, missed_target_weight=0.5))
        files = pipeline.split_dataset(root / "data", root / "split", config)
        guide = save_weights(official_state_dict(create_model(config.student), include_backbone=True),
                             root / "guide.pt")  # fmt: skip
        guides = pipeline.Guides(guide, [guide] * config.guide_folds)
        _, labelled_in = people(files.labelled)
        unlabelled, _ = people(files.unlabelled)
        test, _ = people(files.test)

        def teacher(epochs: int) -> None:
            pipeline.train_diffusion(files, root / f"teacher{epochs}", replace(config, diffusion_epochs=epochs),
                                     guides)  # fmt: skip

        teacher_s = rate(teacher, 1, 3) / labelled_in
        model = pipeline.train_diffusion(files, root / "teacher", config, guides)
        refine_s = seconds(lambda: pipeline.refine_priors(files, model, root / "refined", config)) / unlabelled
        stores = {"prior": files.priors, "gcdr": root / "refined"}

        def student(row: str):
            def train(steps: int) -> None:
                folder = root / f"{row}{steps}"
                pipeline.train_student(files, row, stores, folder, replace(config, student_steps=steps))

            return train

        student_s = rate(student("supervised"), 10, 40)
        twostream_s = rate(student("gcdr"), 10, 40)
        trained = pipeline.train_student(files, "supervised", stores, root / "eval", config)
        eval_s = seconds(lambda: pipeline.evaluate(trained, files, device)) / test

        if args.data:
            train_people, train_in = people(args.data / "train_annotations_release.txt")
            test_people, _ = people(args.data / "test_annotations_release.txt")
        else:
            scale = preset("benchmark").images / args.timing_images
            every, inside = people(files.root / "train_annotations_release.txt")
            train_people, train_in, test_people = round(every * scale), round(inside * scale), round(test * scale)

    stages = {
        "supervised-only student": args.steps * student_s,
        "two guide students": 2 * args.steps * student_s,
        f"teacher ({args.teacher_epochs} epochs)": args.teacher_epochs * args.fraction * train_in * teacher_s,
        "refinement": (1 - args.fraction) * train_people * refine_s,
        "GCDR, argmax, raw students": 3 * args.steps * twostream_s,
        "fully supervised student": args.steps * student_s,
        "five test evaluations": 5 * test_people * eval_s,
    }
    print(f"device {device}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, workers {args.workers}; "
          f"projected for {train_people} training people ({train_in} in frame), {test_people} test people, "
          f"{args.fraction:g} labelled, {args.steps}-step students:")  # fmt: skip
    for stage, cost in stages.items():
        print(f"  {stage:<28} {cost / 60:7.1f} min")
    minutes = sum(stages.values()) / 60
    print(f"  {'one (fraction, seed)':<28} {minutes:7.1f} min")
    figures = {"student_step_s": student_s, "twostream_step_s": twostream_s,
               "teacher_ms_per_person_epoch": 1000 * teacher_s, "refine_ms_per_person": 1000 * refine_s,
               "eval_ms_per_person": 1000 * eval_s, "minutes": minutes}  # fmt: skip
    print("RESULT semisup_cost " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
