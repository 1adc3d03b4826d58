"""Every benchmark of the project in one run, written up as a markdown report with the machine it ran on.

Runs each ``benchmarks/*.py`` whose last line is a ``RESULT`` line (found by the ``print(... "RESULT ``
in its source; helpers starting with ``_`` and this script are not benchmarks), ``--runs`` times, and keeps
the median of every RESULT value. The report holds the machine (CPU model, cores, torch version, load), the
GEMM rates the floors are computed from (best 2048x2048 matmul in fp32 and bf16), FLOPs and matmul-bound
floors of the Gaze-LLE models at 448 px, the RESULT values, and each benchmark's full output.

``--quick`` passes small sizes to the scripts that accept them (``--repeats 2``, ``--persons 100``, ...:
only options a script's ``--help`` lists) and trains the synthetic recipes for one epoch on the ``small``
preset: about 10 minutes on a 2-core CPU. Benchmarks that need a ``gazelab synth`` folder (``--data``) get
one made in a temporary folder (``benchmark`` preset, or ``small`` with ``--quick``) unless ``--data`` is given.
The benchmarks in :data:`ON_ITS_OWN` (hours long) run only when ``--only`` names them.

    python benchmarks/run_all.py --out RESULTS.md [--quick] [--runs 1] [--only predict_speed ...] [--skip ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from _floor import gemm_flops_per_second

HERE = Path(__file__).resolve().parent
QUICK_OPTIONS = {
    "--repeats": "2",
    "--persons": "100",
    "--frames": "5",
    "--images": "10",
    "--epochs": "1",
    "--batch-size": "8",
    "--test-images": "50",
}
"""Small sizes for ``--quick``; each is passed only to scripts whose ``--help`` lists the option."""
QUICK_TRAINING = ["--trainer.max_epochs", "1"]
"""``gazelab train`` overrides (after ``--``) for the benchmarks that take them (an ``overrides`` argument)."""
ON_ITS_OWN = {"semisup_synthetic": "GCDR's table: hours per (fraction, seed) on a CPU"}
"""Benchmarks left out unless named with ``--only``, and why."""


@dataclass
class Outcome:
    """One benchmark's runs: RESULT values per run, wall seconds, and the last run's output."""

    name: str
    results: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    output: str = ""
    error: str = ""

    def medians(self) -> dict[str, float]:
        keys = self.results[0] if self.results else {}
        return {k: statistics.median(r[k] for r in self.results if k in r) for k in keys}


def benchmark_scripts() -> list[Path]:
    """The scripts of this folder that end with a RESULT line."""
    scripts = []
    for path in sorted(HERE.glob("*.py")):
        if path.name.startswith("_") or path.name == Path(__file__).name:
            continue
        if re.search(r"print\(\s*f?[\"']RESULT |f\"RESULT ", path.read_text(encoding="utf-8")):
            scripts.append(path)
    return scripts


def script_arguments(script: Path, quick: bool, data: Path | None, workdir: Path) -> list[str]:
    """Command-line arguments for one script: quick sizes, a synthetic data folder and a temporary run folder."""
    usage = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True).stdout
    arguments: list[str] = []
    if quick:
        for option, value in QUICK_OPTIONS.items():
            if re.search(rf"{option}\b", usage):
                arguments += [option, value]
    needs_data = re.search(r"--data\b", usage) is not None
    if needs_data:
        if data is None:
            raise RuntimeError("needs a --data folder")
        arguments += ["--data", str(data)]
        if re.search(r"--out\b", usage):
            arguments += ["--out", str(workdir / f"run_{script.stem}")]
        if quick and re.search(r"\boverrides\b", usage):
            arguments += ["--", *QUICK_TRAINING]
    return arguments


def needs_data(scripts: list[Path]) -> bool:
    return any(re.search(r"\"--data\"", s.read_text(encoding="utf-8")) for s in scripts)


def parse_result(output: str) -> dict[str, float] | None:
    """The ``key=value`` pairs of the output's last line, when it is a RESULT line."""
    lines = output.strip().splitlines()
    if not lines or not lines[-1].startswith("RESULT "):
        return None
    values = {}
    for pair in lines[-1].split()[2:]:
        key, _, value = pair.partition("=")
        values[key] = float(value)
    return values


def run_benchmark(script: Path, arguments: list[str], runs: int, timeout: float) -> Outcome:
    outcome = Outcome(script.stem)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for _ in range(runs):
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, str(script), *arguments], capture_output=True, text=True, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired as err:
            outcome.error = f"timed out after {timeout:.0f} s"
            partial = err.stdout or ""  # bytes even with text=True
            outcome.output = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            break
        outcome.seconds.append(time.perf_counter() - start)
        outcome.output = done.stdout + (f"\n[stderr]\n{done.stderr[-3000:]}" if done.returncode else "")
        result = parse_result(done.stdout)
        if done.returncode or result is None:
            outcome.error = f"exit code {done.returncode}" if done.returncode else "no RESULT line"
            break
        outcome.results.append(result)
    return outcome


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_rows() -> list[tuple[str, str]]:
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    rows = [
        ("CPU", cpu_model()),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("native bf16 (oneDNN)", "yes" if bf16 else "no"),
        ("torch", torch.__version__),
        ("python", platform.python_version()),
        ("OS", platform.platform()),
    ]
    if torch.cuda.is_available():
        rows.append(("GPU (not used by the CPU figures)", torch.cuda.get_device_name(0)))
    return rows


def gemm_rates() -> dict[str, float]:
    """Best fp32 and bf16 GEMM rates (FLOP/s) on this CPU, as the benchmarks' floors use them."""
    return {name: gemm_flops_per_second(dtype=dtype) for name, dtype in (("fp32", torch.float32),
                                                                           ("bf16", torch.bfloat16))}  # fmt: skip


def gazelle_flops() -> list[tuple[str, float]]:
    """FLOPs of one image and one person for every Gaze-LLE zoo model at 448 px, counted on the meta device
    (shapes only: no memory, no arithmetic, so even ViT-g takes a moment)."""
    from torch.utils.flop_counter import FlopCounterMode

    from gazelab.models import MODEL_ZOO
    from gazelab.models.base import People
    from gazelab.models.gazelle import GazeLLE

    rows = []
    for name, spec in MODEL_ZOO.items():
        with torch.device("meta"):
            model = spec.build()
            if not isinstance(model, GazeLLE) or model.cfg.in_size != 448:
                continue
            images = torch.empty(1, 3, 448, 448)
            head_maps = torch.empty(1, *model.grid)
            people = People(torch.empty(1, 4), torch.zeros(1, dtype=torch.long), {"head_maps": head_maps})
        with FlopCounterMode(display=False) as counter:
            model.decode(model.encode(images), people)
        rows.append((name, counter.get_total_flops()))
    return rows


def report(
    outcomes: list[Outcome], rates: dict[str, float], flops: list[tuple[str, float]], args: argparse.Namespace,
    loads: tuple[float, float], started: datetime,
) -> str:  # fmt: skip
    lines = [
        "# gazelab benchmarks",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `python benchmarks/run_all.py{' --quick' if args.quick else ''} "
        f"--runs {args.runs}`; each value is the median of {args.runs} run(s) of the script (the scripts "
        f"themselves report medians of repeated timings). 1-minute load average {loads[0]:.1f} before, "
        f"{loads[1]:.1f} after{_load_note(max(loads))}.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine_rows()),
        *(f"| {p} GEMM (best 2048x2048 matmul) | {r / 1e9:.0f} GFLOP/s |" for p, r in rates.items()),
        "",
        "## Results",
        "",
        "| benchmark | status | wall s (median) | RESULT |",
        "|---|---|---|---|",
    ]
    for outcome in outcomes:
        values = " ".join(f"{k}={_number(v)}" for k, v in outcome.medians().items())
        seconds = f"{statistics.median(outcome.seconds):.0f}" if outcome.seconds else ""
        lines.append(f"| {outcome.name} | {outcome.error or 'ok'} | {seconds} | {values} |")
    lines += [
        "",
        "## Gaze-LLE models at 448 px: work and matmul-bound floor (one image, one person)",
        "",
        "The floor is FLOPs / the GEMM rate above: no implementation on this machine can be much faster.",
        "",
        "| model | GFLOPs | fp32 floor ms | bf16 floor ms |",
        "|---|---|---|---|",
        *(f"| {n} | {f / 1e9:.1f} | {f / rates['fp32'] * 1e3:.0f} | {f / rates['bf16'] * 1e3:.0f} |" for n, f in flops),
        "",
        "## Output of each benchmark (last run)",
        "",
    ]
    for outcome in outcomes:
        lines += [f"<details><summary>{outcome.name}</summary>", "", "```text", outcome.output.strip(), "```", "",
                  "</details>", ""]  # fmt: skip
    return "\n".join(lines)


def _load_note(load: float) -> str:
    cores = os.cpu_count() or 1
    return f" on {cores} cores: other work competed, so the times are inflated" if load > cores else ""


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="markdown report to write")
    parser.add_argument("--quick", action="store_true", help="small sizes: about 10 minutes on 2 cores")
    parser.add_argument("--runs", type=int, default=1, help="runs of each script; values are medians")
    parser.add_argument("--only", nargs="*", default=[], help="benchmark names to run (default: all)")
    parser.add_argument("--skip", nargs="*", default=[], help="benchmark names not to run")
    parser.add_argument("--data", type=Path, help="a `gazelab synth` folder for the training benchmarks")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script run")
    args = parser.parse_args()

    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()[0]
    skip = {*args.skip, *(set(ON_ITS_OWN) - set(args.only))}
    scripts = [s for s in benchmark_scripts() if (not args.only or s.stem in args.only) and s.stem not in skip]
    for name in sorted(set(ON_ITS_OWN) - set(args.only)):
        print(f"{name}: left out ({ON_ITS_OWN[name]}); name it with --only to run it", flush=True)
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = args.data
        if data is None and needs_data(scripts):
            data = make_synthetic(workdir / "synth", args.quick)
        for script in scripts:
            print(f"running {script.name} ...", flush=True)
            try:
                arguments = script_arguments(script, args.quick, data, workdir)
            except RuntimeError as err:
                outcomes.append(Outcome(script.stem, error=str(err)))
                continue
            outcome = run_benchmark(script, arguments, args.runs, args.timeout)
            print(f"  {outcome.error or 'ok'}: " + " ".join(f"{k}={_number(v)}" for k, v in outcome.medians().items()))
            outcomes.append(outcome)
    rates = gemm_rates()
    flops = gazelle_flops()
    load_after = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(outcomes, rates, flops, args, (load_before, load_after), started) + "\n")
    print(f"wrote {args.out}")


def make_synthetic(folder: Path, quick: bool) -> Path:
    """The synthetic benchmark set (``small`` preset with ``--quick``), written once for all scripts."""
    from gazelab.data.synthetic import preset, write_dataset

    name = "small" if quick else "benchmark"
    print(f"writing the synthetic {name} set to {folder} ...", flush=True)
    write_dataset(folder, preset(name), workers=os.cpu_count() or 1, preset_name=name)
    return folder


if __name__ == "__main__":
    main()
