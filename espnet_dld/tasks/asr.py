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
from typing import Optional, Sequence, Tuple, Union

import torch

from espnet_dld.utils.quiet_imports import import_espnet_quietly

import_espnet_quietly()

import espnet2.tasks.asr as espnet_asr  # noqa: E402
from espnet2.train.trainer import Trainer  # noqa: E402

from espnet_dld.asr.teacher_cache import (  # noqa: E402
    CACHE_DATA_NAMES,
    TeacherCacheError,
    check_cache_covers,
    data_options,
)
from espnet_dld.data.atomic import write_text_atomic  # noqa: E402
from espnet_dld.data.kaldi_dir import read_keys  # noqa: E402
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
    and the ``dld`` model available, the teacher-posterior cache as optional
    inputs, and resuming that explains a checkpoint that does not fit;
    otherwise identical."""

    trainer = ResumeCheckingTrainer

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return tuple(super().optional_data_names(train, inference)) + CACHE_DATA_NAMES

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        model = super().build_model(args)
        cache = getattr(model, "teacher_cache", None)
        if cache is not None and not getattr(args, "collect_stats", False):
            check_cache_fits_training(args, cache)
        return model

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


def check_cache_fits_training(args: argparse.Namespace, cache: str) -> None:
    """Before the first step: the train and valid data read the posteriors of
    ``cache``, every utterance training will see has them, and nothing
    changes the teacher's input from one epoch to the next."""
    conf = getattr(args, "preprocessor_conf", None) or {}
    augmentation = [name for name in ("rir_scp", "noise_scp") if getattr(args, name, None)]
    augmentation += [f"preprocessor_conf.{k}" for k in ("data_aug_effects",) if conf.get(k)]
    if augmentation:
        raise TeacherCacheError(
            f"model_conf.teacher_cache={cache} with on-the-fly augmentation ({', '.join(augmentation)}): the "
            "teacher's input changes every epoch, so stored posteriors would be wrong; train with the online "
            "teacher (model_conf.teacher_model) or augment offline"
        )
    for mode in ("train", "valid"):
        entries = {name: path for path, name, *_ in getattr(args, f"{mode}_data_path_and_name_and_type") or []}
        missing = [name for name in CACHE_DATA_NAMES if name not in entries]
        if missing:
            raise TeacherCacheError(
                f"model_conf.teacher_cache={cache}, but the {mode} data has no {', '.join(missing)}: add "
                f"{' '.join(data_options(cache, '<set>', mode))}"
            )
        shape_files = getattr(args, f"{mode}_shape_file") or []
        keys = read_keys(shape_files[0]) if shape_files else []
        for name in CACHE_DATA_NAMES:
            scp = Path(entries[name])
            if scp.resolve().parent.parent != Path(cache).resolve():
                raise TeacherCacheError(
                    f"--{mode}_data_path_and_name_and_type reads {name} from {scp}, which is not in "
                    f"model_conf.teacher_cache={cache} (expected {cache}/<set>/{scp.name})"
                )
            check_cache_covers(scp, keys, f"the {mode} set ({shape_files[0] if shape_files else 'no shape file'})")
