#!/usr/bin/env python3
"""Run DLD's frozen teacher once over a data set and store its CTC posteriors
(top k per frame) for training without the teacher (see
:mod:`espnet_dld.asr.teacher_cache`).

    python -m espnet_dld.bin.dump_teacher_posteriors \
        --teacher_config exp/asr_teacher/config.yaml --teacher_model exp/asr_teacher/valid.loss_ctc.ave.pth \
        --data_path_and_name_and_type dump/raw/train/wav.scp,speech,sound \
        --cache_dir dump/teacher_posteriors/asr_teacher_top8_T1.0 --name train --topk 8 --temperature 1.0

Each utterance is run alone (batch size 1, no padding), so its posteriors
do not depend on which utterances share its batch.  Input goes through
ESPnet's data loader and the teacher's own preprocessor, frontend and
normalisation, as in online DLD training.  The set is written into
``<cache_dir>/<name>.tmp`` and renamed to ``<cache_dir>/<name>`` when
complete (:func:`espnet_dld.data.atomic.atomic_dir`); an existing complete set is kept unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
import yaml

from espnet_dld.asr.teacher_cache import (
    FILE_STEMS,
    TOPK_IDX,
    TOPK_PROB,
    check_same_meta,
    make_meta,
    read_meta,
)
from espnet_dld.data.atomic import atomic_dir, write_text_atomic
from espnet_dld.utils.cli import add_log_level, run_cli

logger = logging.getLogger(__name__)

#: Kaldi compression methods (kaldiio / Kaldi's CompressionMethod): 16 bits per value
COMPRESS_PROB = 3  # kTwoByteAuto: linear between the matrix's min and max (step <= 1/65535 for probabilities)
COMPRESS_INT16 = 4  # kTwoByteSignedInteger: integers in [-32768, 32767], exact


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher_config", default=None, help="teacher config.yaml (not with a packed zip)")
    parser.add_argument("--teacher_model", required=True, help="teacher .pth, or a packed model zip")
    parser.add_argument("--data_path_and_name_and_type", required=True,
                        help="the speech input as training reads it: <scp>,speech,<sound|kaldi_ark>")
    parser.add_argument("--key_file", default=None, help="only these utterances (first column)")
    parser.add_argument("--cache_dir", required=True, help="cache directory (one per teacher/temperature/k)")
    parser.add_argument("--name", required=True, help="data set name: written to <cache_dir>/<name>/")
    parser.add_argument("--topk", type=int, default=8, help="tokens kept per frame")
    parser.add_argument("--temperature", type=float, default=1.0, help="KD temperature of the probabilities")
    parser.add_argument("--ngpu", type=int, default=0, choices=(0, 1), help="run the teacher on one GPU")
    parser.add_argument("--overwrite", action="store_true", help="redo a set that is already complete")
    add_log_level(parser)
    return parser


def dump(
    teacher_config: Optional[str],
    teacher_model: str,
    data_path_and_name_and_type: str,
    cache_dir: str,
    name: str,
    topk: int = 8,
    temperature: float = 1.0,
    key_file: Optional[str] = None,
    ngpu: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``<cache_dir>/<name>/{prob,idx}.{ark,scp}`` and ``stats.yaml``; returns the set dir."""
    import kaldiio
    from tqdm import tqdm

    from espnet_dld.asr.teacher import ctc_logits, freeze
    from espnet_dld.asr.trained_model import load_trained_model
    from espnet_dld.tasks.asr import ASRTask

    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    if temperature <= 0:
        raise ValueError(f"--temperature must be > 0, got {temperature}")
    parts = data_path_and_name_and_type.split(",")
    if len(parts) != 3 or parts[1] != "speech":
        raise ValueError(f"--data_path_and_name_and_type must be <scp>,speech,<type>, got {data_path_and_name_and_type!r}")
    if not Path(parts[0]).is_file():
        raise FileNotFoundError(f"--data_path_and_name_and_type: {parts[0]} does not exist")
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"--name must be a plain data set name, got {name!r}")

    cache, out = Path(cache_dir), Path(cache_dir) / name
    teacher, args = load_trained_model(teacher_model, teacher_config, model_option="--teacher_model",
                                       config_option="--teacher_config")
    freeze(teacher)
    token_list = list(teacher.token_list)
    if topk > len(token_list):
        raise ValueError(f"--topk {topk} exceeds the teacher's {len(token_list)} tokens")
    meta = make_meta(teacher_config, teacher_model, token_list, temperature, topk)
    if (cache / "meta.yaml").is_file():  # also for a complete set: a retrained teacher is not silently reused
        check_same_meta(cache, read_meta(cache), meta)
    else:
        write_text_atomic(cache / "meta.yaml", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    if (out / "stats.yaml").is_file() and not overwrite:
        logger.info("%s is complete, kept (--overwrite to redo)", out)
        return out

    device = "cuda" if ngpu else "cpu"
    teacher.to(device)
    loader = ASRTask.build_streaming_iterator(
        [tuple(parts)], preprocess_fn=ASRTask.build_preprocess_fn(args, False),
        collate_fn=ASRTask.build_collate_fn(args, False), key_file=key_file, batch_size=1,
        dtype="float32", num_workers=0, inference=True,
    )
    # Kaldi 16-bit compressed matrices (read by kaldiio and by ESPnet >= 202611's omniio alike):
    # probabilities linear in [min, max] of each utterance, indices exact as 16-bit integers
    idx_method = COMPRESS_INT16 if len(token_list) <= 2**15 else None  # None: plain float32, exact below 2^24
    start = time.perf_counter()
    utts = frames = 0
    residual_sum, residual_max = 0.0, 0.0
    with atomic_dir(out) as tmp:
        writers = {n: kaldiio.WriteHelper(f"ark,scp:{tmp / FILE_STEMS[n]}.ark,{tmp / FILE_STEMS[n]}.scp",
                                          compression_method=method)
                   for n, method in ((TOPK_PROB, COMPRESS_PROB), (TOPK_IDX, idx_method))}
        try:
            total = sum(1 for line in open(key_file or parts[0], encoding="utf-8") if line.strip())
            for keys, batch in tqdm(loader, desc=f"teacher posteriors {name}", unit="utt", total=total,
                                    mininterval=10):
                logits, lens = ctc_logits(teacher, batch["speech"].to(device), batch["speech_lengths"].to(device))
                n = int(lens[0])
                if n < 1:
                    raise ValueError(f"utterance {keys[0]} of {parts[0]} gives no teacher output frame (too short)")
                prob = torch.softmax(logits[0, :n].float() / temperature, dim=-1)
                values, indices = prob.topk(topk, dim=-1)
                residual = (1.0 - values.sum(-1)).clamp(min=0.0)
                residual_sum += float(residual.sum())
                residual_max = max(residual_max, float(residual.max()))
                writers[TOPK_PROB][keys[0]] = values.cpu().numpy().astype("float32")
                writers[TOPK_IDX][keys[0]] = indices.cpu().numpy().astype("float32")
                utts, frames = utts + 1, frames + n
        finally:
            for w in writers.values():
                w.close()
        if utts == 0:
            raise ValueError(f"no utterance to dump in {parts[0]}" + (f" with --key_file {key_file}" if key_file else ""))
        for n in (TOPK_PROB, TOPK_IDX):  # the scp must point at the final location
            scp = tmp / f"{FILE_STEMS[n]}.scp"
            scp.write_text(scp.read_text(encoding="utf-8").replace(f" {tmp}/", f" {out}/"), encoding="utf-8")
        stats = {
            "input": data_path_and_name_and_type,
            "utterances": utts,
            "frames": frames,
            "bytes": sum((tmp / f"{stem}.ark").stat().st_size for stem in FILE_STEMS.values()),
            "mean_residual_mass": residual_sum / frames,
            "max_residual_mass": residual_max,
            "seconds": round(time.perf_counter() - start, 2),
            "device": device,
        }
        (tmp / "stats.yaml").write_text(yaml.safe_dump(stats, sort_keys=False), encoding="utf-8")
    logger.info("%d utterances, %d frames into %s; teacher mass outside the top %d: mean %.2e, max %.2e",
                utts, frames, out, topk, stats["mean_residual_mass"], residual_max)
    return out


def main(cmd: Optional[Sequence[str]] = None) -> int:
    return run_cli("dump_teacher_posteriors", get_parser(), dump, cmd)


if __name__ == "__main__":
    sys.exit(main())
