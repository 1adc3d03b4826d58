"""``gazelab export``: a Gaze-LLE model as ONNX graphs for onnxruntime, TensorRT or a browser.

Writes ``backbone.onnx`` (picture -> features, once per image), ``decoder.onnx`` (features + head boxes ->
heatmaps, any number of people) and ``gazelab_onnx.json`` (input size, normalisation, model name); see
:mod:`gazelab.export.onnx`. The weights are chosen as for ``gazelab predict``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gazelab.cli import app

WEIGHTS_HELP = (
    "Weight file (published format or gazelab's). Default: the model's published weights, downloaded once. "
    "'none': random weights (tests only)."
)


@app.command("export")
def export(
    model: str = typer.Option("gazelle_dinov2_vitb14_inout", "--model", "-m", help="Zoo name (Gaze-LLE models)."),
    weights: str = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    backbone_weights: Path = typer.Option(None, "--backbone-weights", help="Backbone weight file (official DINOv2)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Run both graphs with onnxruntime and compare with PyTorch."
    ),
) -> None:
    """Export backbone and decoder as separate ONNX graphs (encode once, query per person)."""
    from gazelab.commands.predict import _load_model
    from gazelab.export.onnx import export_onnx

    gaze_model = _load_model(model, weights, backbone_weights)
    written = export_onnx(gaze_model, out, model)
    for path in (written.backbone, written.decoder, written.meta):
        typer.echo(f"wrote {path} ({path.stat().st_size / 1e3:,.0f} kB)")
    if check:
        from gazelab.export.onnx import compare_with_torch

        difference = compare_with_torch(gaze_model, out)
        typer.echo(f"onnxruntime vs PyTorch on a test picture with 3 people: max heatmap difference {difference:.2g}")
