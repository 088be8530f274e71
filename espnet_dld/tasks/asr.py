"""ESPnet's ASR task with espnet-dld's classes registered.

``ASRTask.build_model`` reads the module-level ``ClassChoices`` of
``espnet2.tasks.asr`` directly, so adding our classes to their ``classes``
dicts is what makes training, ``build_model_from_file`` and ``Speech2Text``
see them (see also :mod:`espnet_dld.registration`).  The subclass exists so
that DDP workers, which unpickle ``ASRTask.main_worker``, import this module
(and so register) too.  It also trains with :class:`DLDTrainer`: one gate
set per optimizer update on every rank, a DDP set-up checked before the
first step, and resuming that explains a checkpoint that does not fit.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Tuple, TypeVar, Union

import torch

from espnet_dld.utils.quiet_imports import import_espnet_quietly

import_espnet_quietly()

import espnet2.tasks.asr as espnet_asr  # noqa: E402
from espnet2.train.trainer import Trainer  # noqa: E402

from espnet_dld.asr.encoder.layer_gating import check_ddp_ready, gated_stacks, set_gate_update  # noqa: E402
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


#: a directory: every rank appends the blocks each training micro-batch ran to
#: ``gates.rank<r>.jsonl`` there (for checking DDP runs; docs/distributed.md)
GATE_TRACE_ENV = "ESPNET_DLD_GATE_TRACE"

_Item = TypeVar("_Item")


class DLDTrainer(Trainer):
    """ESPnet's trainer with three additions for dynamic-depth students.

    - Before each micro-batch it names the optimizer update it belongs to
      (``epoch``, ``(iteration - 1) // accum_grad``) to the model's gates
      (:func:`~espnet_dld.asr.encoder.layer_gating.set_gate_update`), so that
      all micro-batches of an update and all DDP ranks run the same blocks.
      ESPnet resumes at epoch boundaries, so a resumed run gets the same keys.
    - Under DDP, a dynamic encoder without ``unused_parameters: true`` stops
      before the first step with an error naming the option.
    - ``--resume`` names the checkpoint and what does not fit when
      ``checkpoint.pth`` of the output directory was written by another
      configuration (other features, depth or width) or is truncated; ESPnet
      itself fails there with torch's raw size-mismatch or unpickling error.
    """

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:
        if distributed_option.distributed:
            check_ddp_ready(model, trainer_options.unused_parameters,
                            f"{Path(trainer_options.output_dir) / 'config.yaml'} (or pass --unused_parameters true)")
        super().run(model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
                    plot_attention_iter_factory, trainer_options, distributed_option)

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter, summary_writer,
                        options, distributed_option) -> bool:
        if gated_stacks(model):
            trace = _gate_trace_file(distributed_option)
            iterator = _keyed_by_update(iterator, model, options.seed, reporter.get_epoch(), options.accum_grad, trace)
        return super().train_one_epoch(
            model=model, iterator=iterator, optimizers=optimizers, schedulers=schedulers, scaler=scaler,
            reporter=reporter, summary_writer=summary_writer, options=options, distributed_option=distributed_option,
        )

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


def _gate_trace_file(distributed_option) -> Optional[Path]:
    directory = os.environ.get(GATE_TRACE_ENV)
    if not directory:
        return None
    rank = distributed_option.dist_rank if distributed_option.distributed else 0
    Path(directory).mkdir(parents=True, exist_ok=True)
    return Path(directory) / f"gates.rank{rank}.jsonl"


def _keyed_by_update(iterator: Iterable[_Item], model: torch.nn.Module, seed: int, epoch: int, accum_grad: int,
                     trace: Optional[Path]) -> Iterator[_Item]:
    """``iterator``'s batches, each preceded by naming its optimizer update to
    the gates; the trainer counts micro-batches from 1 and steps when the count
    is a multiple of ``accum_grad``, hence ``(iteration - 1) // accum_grad``.
    With ``trace``, the blocks each micro-batch ran are appended there once the
    trainer asks for the next batch (i.e. after its forward and backward)."""
    for iteration, item in enumerate(iterator, 1):
        update = (iteration - 1) // accum_grad
        set_gate_update(model, seed, epoch, update)
        yield item
        if trace is not None:
            record = {"epoch": epoch, "iteration": iteration, "update": update,
                      "layers": [stack.last_active_layers for stack in gated_stacks(model)]}
            with trace.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


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
    inputs, and :class:`DLDTrainer`; otherwise identical."""

    trainer = DLDTrainer

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
        cls.trainer = Trainer if getattr(args, "use_deepspeed", False) else DLDTrainer
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
