"""``gazelab models``: the model zoo, and which weight files are already in the cache.

Parameter counts come from building each model on PyTorch's ``meta`` device: no memory is allocated and no
weights are initialised, so listing the ViT-L models takes milliseconds.
"""

from __future__ import annotations

import typer

from gazelab.cli import app


@app.command("models")
def models(
    pretrained: bool = typer.Option(False, "--pretrained", help="Only models with published weights."),
) -> None:
    """List the zoo: backbone, parameters, in/out head, training data, weight files and whether they are cached.

    A model with released weights needs both its file and its backbone's (the released files hold the decoder
    only); each is downloaded on first use, or can be put in the cache folder printed below the table.
    """
    import torch
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from gazelab.models import MODEL_ZOO, list_models, weights_home
    from gazelab.models.checkpoints import cached_path

    table = Table(
        title="gazelab model zoo",
        caption="params: backbone + decoder; weight files marked * are in the cache",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("name", "backbone", "params", "in/out", "trained on", "weight files"):
        # Only the prose wraps: names, counts and file names stay whole.
        prose = column == "trained on"
        table.add_column(column, no_wrap=not prose, overflow="fold" if prose else "ellipsis", min_width=10 * prose)
    for name in list_models(pretrained=pretrained):
        spec = MODEL_ZOO[name]
        with torch.device("meta"):
            model = spec.build()
        backbone = sum(p.numel() for p in model.backbone.parameters())
        decoder = sum(p.numel() for p in model.parameters()) - backbone
        files = [w for w in (spec.weights, spec.backbone_weights) if w is not None]
        table.add_row(
            name,
            spec.backbone,
            f"{_millions(backbone)} + {_millions(decoder)}",
            "yes" if model.has_inout else "no",
            spec.data,
            "\n".join(f"{w.filename} *" if cached_path(w).is_file() else w.filename for w in files) or "none",
        )
    console = Console()
    if not console.is_terminal:  # piped or captured (rich would assume 80 columns): keep rows whole for grep
        console = Console(width=150)
    console.print(table)
    console.print(f"weight cache: {weights_home() / 'weights'} (set GAZELAB_HOME to move it)")


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"
