"""Train GCDR's heatmap diffusion model from a recipe: ``python -m gazelab.gcdr.train --config FILE [overrides]``.

The same LightningCLI as ``gazelab train`` (:class:`~gazelab.train.cli.GazeCLI`: atomic checkpoints in
``<default_root_dir>/checkpoints``, ``last.ckpt`` every epoch and exact resume with ``--ckpt_path last``, CSV
logs), over :class:`~gazelab.gcdr.lightning.DiffusionModule`. The ``data`` section names its class: the plain
:class:`~gazelab.train.data.GazeDataModule` for supervised training on the labelled split, or
:class:`~gazelab.gcdr.data.MeanTeacherData` for the mean-teacher stage. Recipes: ``configs/gcdr/diffusion_*.yaml``.
The resulting ``checkpoints/*.ckpt`` are what ``gazelab refine --weights`` takes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule

from gazelab.gcdr.lightning import DiffusionModule
from gazelab.train.checkpointing import RandomState
from gazelab.train.cli import GazeCLI
from gazelab.train.cli import build_cli as build_training_cli


def build_cli(args: Sequence[str], cli_class: type[GazeCLI] = GazeCLI) -> GazeCLI:
    """Parse ``args`` (``--config FILE`` and overrides) and build trainer, model and data — without training."""
    return build_training_cli(
        args,
        cli_class,
        module_class=DiffusionModule,
        data_class=LightningDataModule,
        subclass_mode_data=True,
        callbacks=[RandomState()],
        prog="python -m gazelab.gcdr.train",
        description=__doc__.splitlines()[0],
    )


def main(args: Sequence[str] | None = None) -> None:
    cli = build_cli(sys.argv[1:] if args is None else args)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path, weights_only=True)


if __name__ == "__main__":
    main()
