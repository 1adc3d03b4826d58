"""``gazelab train``: LightningCLI over :class:`GazeModule` and :class:`GazeDataModule`.

A recipe is a YAML file with the sections ``trainer`` (any :class:`lightning.pytorch.Trainer` argument),
``model`` (:class:`~gazelab.train.module.GazeModule`), ``data`` (:class:`~gazelab.train.data.GazeDataModule`)
and ``checkpoint`` (:class:`~lightning.pytorch.callbacks.ModelCheckpoint`); any value can be overridden on the
command line (``--trainer.max_epochs 3``, ``--data.batch_size 16``). What every run gets without asking:

- checkpoints in ``<default_root_dir>/checkpoints``, written atomically: ``best-epoch=N.ckpt`` (best by
  ``checkpoint.monitor``; the latest epoch without one) and ``last.ckpt`` (every epoch) — ``--ckpt_path last``
  resumes an interrupted run exactly;
- CSV logs (and TensorBoard when it is installed) in ``<default_root_dir>/version_<n>``, with the resolved
  config beside them;
- the best weights exported in the family's published format as ``<default_root_dir>/weights/<model>.pt``.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence

from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gazelab.train.checkpointing import AtomicCheckpointIO, LatestCheckpoint, RandomState
from gazelab.train.data import GazeDataModule
from gazelab.train.export import ExportWeights
from gazelab.train.module import GazeModule

DEFAULT_ROOT = "runs/train"


class GazeCLI(LightningCLI):
    """LightningCLI with gazelab's defaults (checkpoint folder, loggers, atomic saves, exact resume, export)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.filename": "best-{epoch:03d}"})
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None, help="Resume from this checkpoint ('last': the run's last)."
        )

    def before_instantiate_classes(self) -> None:
        config = self.config
        root = config.trainer.default_root_dir or DEFAULT_ROOT
        config.trainer.default_root_dir = root
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = f"{root}/checkpoints"

    def instantiate_trainer(self, **kwargs) -> Trainer:
        if self.config_init.trainer.logger is None:
            kwargs["logger"] = default_loggers(self.config_init.trainer.default_root_dir)
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        trainer.callbacks.append(LatestCheckpoint(self.config_init.checkpoint.dirpath))
        return trainer


def default_loggers(root: str) -> list:
    """CSV always (plain files, read by the benchmarks), TensorBoard as well when it is installed."""
    loggers = [CSVLogger(root, name="")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(root, name="", version=loggers[0].version))
    return loggers


def build_cli(
    args: Sequence[str],
    cli_class: type[GazeCLI] = GazeCLI,
    module_class: type[LightningModule] = GazeModule,
    data_class: type[LightningDataModule] = GazeDataModule,
    subclass_mode_data: bool = False,
    callbacks: Sequence[Callback] | None = None,
    prog: str = "gazelab train",
    description: str = "Train a gaze model from a YAML recipe.",
) -> GazeCLI:
    """Parse ``args`` (``--config FILE`` and overrides) and build trainer, model and data — without training.

    The defaults are ``gazelab train``; other trainable modules (GCDR's diffusion model) reuse the same CLI
    with their own module and data classes.
    """
    with warnings.catch_warnings():
        # `gazelab train` passes its own arguments; LightningCLI would warn that sys.argv holds others.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        return cli_class(
            module_class,
            data_class,
            subclass_mode_data=subclass_mode_data,
            args=list(args),
            run=False,
            seed_everything_default=0,
            trainer_defaults={
                "callbacks": list(callbacks) if callbacks is not None else [RandomState(), ExportWeights()]
            },
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"prog": prog, "description": description},
        )


def run_training(args: Sequence[str]) -> GazeCLI:
    """``gazelab train``: build from ``args``, train (resuming from ``--ckpt_path``), return the CLI."""
    cli = build_cli(args)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path, weights_only=True)
    return cli
