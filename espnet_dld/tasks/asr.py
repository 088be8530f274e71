"""ESPnet's ASR task with espnet-dld's classes registered.

``ASRTask.build_model`` reads the module-level ``ClassChoices`` of
``espnet2.tasks.asr`` directly, so adding our classes to their ``classes``
dicts is what makes training, ``build_model_from_file`` and ``Speech2Text``
see them (see also :mod:`espnet_dld.registration`).  The subclass exists so
that DDP workers, which unpickle ``ASRTask.main_worker``, import this module
(and so register) too.  It also trains with :class:`ResumeCheckingTrainer`,
whose resuming explains a checkpoint that does not fit.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from espnet_dld.utils.quiet_imports import import_espnet_quietly

import_espnet_quietly()

import espnet2.tasks.asr as espnet_asr  # noqa: E402
from espnet2.train.trainer import Trainer  # noqa: E402

from espnet_dld.data.atomic import write_text_atomic  # noqa: E402
from espnet_dld.registration import register  # noqa: E402
from espnet_dld.utils.checkpoint import CheckpointError, state_dict_mismatch  # noqa: E402

register()  # a no-op when the import hook already did it


class ResumeCheckingTrainer(Trainer):
    """ESPnet's trainer, whose ``--resume`` names the checkpoint and what does
    not fit when ``checkpoint.pth`` of the output directory was written by
    another configuration (other features, depth or width) or is truncated.

    ESPnet itself fails there with torch's raw size-mismatch or unpickling
    error, which names neither the file nor what to do about it.
    """

    @staticmethod
    def resume(
        checkpoint: Union[str, Path],
        model: torch.nn.Module,
        reporter,
        optimizers: Sequence[torch.optim.Optimizer],
        schedulers: Sequence[Optional[object]],
        scaler,
        ngpu: int = 0,
        strict: bool = True,
    ) -> None:
        try:
            Trainer.resume(checkpoint, model, reporter, optimizers, schedulers, scaler, ngpu=ngpu, strict=strict)
        except Exception as e:
            raise explain_resume_failure(Path(checkpoint), model, e) from e


def explain_resume_failure(checkpoint: Path, model: torch.nn.Module, error: Exception) -> CheckpointError:
    """A :class:`CheckpointError` saying why ``checkpoint`` could not be resumed
    into ``model`` (unreadable file, mismatching keys, or ``error`` itself)."""
    advice = (
        f"delete {checkpoint} (or the whole experiment folder {checkpoint.parent}) to train afresh, "
        "or train this configuration into another --output_dir"
    )
    try:
        states = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as e:
        return CheckpointError(
            f"cannot resume from {checkpoint}: the file is truncated or not a checkpoint "
            f"({' '.join(str(e).split())}); {advice}"
        )
    state = states.get("model") if isinstance(states, dict) else None
    if not isinstance(state, dict):
        return CheckpointError(f"cannot resume from {checkpoint}: it holds no 'model' state; {advice}")
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        return CheckpointError(
            f"cannot resume from {checkpoint}: it was written by a model of another configuration than "
            f"this run's (other features, depth or width?): {'; '.join(problems)}; {advice}"
        )
    return CheckpointError(
        f"cannot resume from {checkpoint} (optimizer, scheduler or another option changed since it was "
        f"written?): {' '.join(str(error).split())}; {advice}"
    )


class ASRTask(espnet_asr.ASRTask):
    """``espnet2.tasks.asr.ASRTask`` with ``dld_conformer``, ``dld_transformer``
    and the ``dld`` model available, and resuming that explains a checkpoint
    that does not fit; otherwise identical."""

    trainer = ResumeCheckingTrainer

    @classmethod
    def main_worker(cls, args: argparse.Namespace) -> None:
        """ESPnet's ``main_worker``; when resuming fails, the experiment's
        previous ``config.yaml`` (which ESPnet overwrites before resuming) is
        put back, so the folder's config still describes its checkpoints."""
        # ESPnet swaps in its DeepSpeed trainer only if the task keeps the stock one.
        cls.trainer = Trainer if getattr(args, "use_deepspeed", False) else ResumeCheckingTrainer
        config = Path(args.output_dir) / "config.yaml" if getattr(args, "output_dir", None) else None
        previous = None
        if (config is not None and getattr(args, "resume", False) and config.is_file()
                and (config.parent / "checkpoint.pth").exists()):
            previous = config.read_text(encoding="utf-8")
        try:
            super().main_worker(args)
        except CheckpointError:
            if previous is not None:
                write_text_atomic(config, previous)
            raise
