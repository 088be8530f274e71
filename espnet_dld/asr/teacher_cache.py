"""The teacher-posterior cache: DLD's frozen teacher run once, offline.

The teacher of DLD is frozen and sees the speech before SpecAugment, so when
the input is deterministic (clean features, speed perturbation done offline,
no on-the-fly noise or reverberation) its CTC posteriors are the same on
every epoch.  They are stored once per utterance as the ``k`` most likely
tokens per frame: probabilities at the KD temperature and token indices, each
a Kaldi 16-bit compressed matrix (2 bytes per value; probabilities to within
1/131070, indices exact), in two ``ark``/``scp`` pairs per data set, read by
kaldiio and by the omniio reader of ESPnet 202611 alike.
Training reads them through ESPnet's own data loader as two extra inputs
(:data:`TOPK_PROB`, :data:`TOPK_IDX`) and never builds the teacher.

Layout of a cache directory::

    <cache>/meta.yaml            teacher (path, sha256), token list, temperature, k
    <cache>/<set>/prob.{ark,scp} (T, k) probabilities per utterance
    <cache>/<set>/idx.{ark,scp}  (T, k) their token indices
    <cache>/<set>/stats.yaml     utterances, frames, mass outside the top k

Everything that could make the cache disagree with training is checked
before the first step (:func:`check_cache_meta`, :func:`check_cache_covers`)
or on every batch (frames per utterance, in the model).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import yaml

from espnet_dld.data.kaldi_dir import read_keys
from espnet_dld.utils.checkpoint import file_sha256

#: ESPnet data names of the two cached inputs (``--*_data_path_and_name_and_type scp,<name>,kaldi_ark``)
TOPK_PROB = "teacher_topk_prob"
TOPK_IDX = "teacher_topk_idx"
CACHE_DATA_NAMES = (TOPK_PROB, TOPK_IDX)
#: file stem of each input inside ``<cache>/<set>/``
FILE_STEMS = {TOPK_PROB: "prob", TOPK_IDX: "idx"}
FORMAT = "espnet_dld teacher posteriors v1"
REBUILD = "delete it and dump it again (python -m espnet_dld.bin.dump_teacher_posteriors)"


class TeacherCacheError(ValueError):
    """The cache does not match the data, the student or the teacher."""


def read_meta(cache_dir: Union[str, Path]) -> Dict:
    """``<cache>/meta.yaml``; TeacherCacheError naming the file if it is absent or not ours."""
    path = Path(cache_dir) / "meta.yaml"
    if not path.is_file():
        raise TeacherCacheError(
            f"teacher-posterior cache {cache_dir}: {path} does not exist; dump the teacher's posteriors "
            "first (python -m espnet_dld.bin.dump_teacher_posteriors)"
        )
    meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TeacherCacheError(f"{path} is not a teacher-posterior cache description (format {FORMAT!r})")
    return meta


def make_meta(teacher_config: Optional[str], teacher_model: str, token_list: Sequence[str],
              temperature: float, topk: int) -> Dict:
    return {
        "format": FORMAT,
        "teacher_config": None if teacher_config is None else str(Path(teacher_config).resolve()),
        "teacher_model": str(Path(teacher_model).resolve()),
        "teacher_sha256": file_sha256(teacher_model),
        "temperature": float(temperature),
        "topk": int(topk),
        "token_list": list(token_list),
    }


def check_same_meta(cache_dir: Union[str, Path], existing: Dict, new: Dict) -> None:
    """A second dump into the same cache must come from the same teacher and settings."""
    for key in ("teacher_sha256", "temperature", "topk", "token_list"):
        if existing.get(key) != new.get(key):
            what = {"teacher_sha256": f"teacher checkpoint ({existing.get('teacher_model')} then, "
                                      f"{new.get('teacher_model')} now)"}.get(key, key)
            raise TeacherCacheError(
                f"teacher-posterior cache {cache_dir} holds posteriors of another {what}: "
                f"{_short(existing.get(key))} in {Path(cache_dir) / 'meta.yaml'}, {_short(new.get(key))} now; "
                f"use another cache directory, or {REBUILD}"
            )


def check_cache_meta(cache_dir: Union[str, Path], token_list: Sequence[str], temperature: float,
                     teacher_model: Optional[str] = None) -> Dict:
    """The cache fits a student with ``token_list`` distilling at ``temperature``
    (and, if given, comes from ``teacher_model`` as it is now on disk)."""
    from espnet_dld.asr.teacher import check_token_lists

    meta = read_meta(cache_dir)
    where = f"teacher-posterior cache {cache_dir}"
    try:
        check_token_lists(token_list, meta["token_list"], where)
    except ValueError as e:
        raise TeacherCacheError(f"{e}; {REBUILD}") from None
    if float(meta["temperature"]) != float(temperature):
        raise TeacherCacheError(
            f"{where} stores posteriors at temperature {meta['temperature']}, but model_conf.kd_temperature is "
            f"{temperature}; the top-k probabilities cannot be re-tempered: dump at {temperature} "
            "(dump_teacher_posteriors --temperature) into another cache directory"
        )
    if teacher_model is not None:
        if not Path(teacher_model).is_file():
            raise TeacherCacheError(f"model_conf.teacher_model: {teacher_model} does not exist")
        if file_sha256(teacher_model) != meta["teacher_sha256"]:
            raise TeacherCacheError(
                f"{where} was dumped from {meta['teacher_model']} (sha256 {meta['teacher_sha256'][:12]}...), "
                f"but model_conf.teacher_model {teacher_model} has other contents (retrained or another "
                f"teacher?); {REBUILD}"
            )
    return meta


def check_cache_covers(scp: Union[str, Path], keys: Iterable[str], what: str) -> None:
    """Every utterance in ``keys`` (those training will read) has an entry in ``scp``."""
    scp = Path(scp)
    if not scp.is_file():
        raise TeacherCacheError(f"teacher-posterior cache file {scp} does not exist ({what}); {REBUILD}")
    cached = set(read_keys(scp))
    missing = [k for k in keys if k not in cached]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise TeacherCacheError(
            f"teacher-posterior cache {scp} has no entry for {len(missing)} utterance(s) of {what}: {shown}; "
            f"the cache was dumped from other data: {REBUILD}"
        )


def data_options(cache_dir: Union[str, Path], set_name: str, mode: str = "train") -> List[str]:
    """The ``--{mode}_data_path_and_name_and_type`` options that feed a cached set to ESPnet."""
    options = []
    for name in CACHE_DATA_NAMES:
        scp = Path(cache_dir) / set_name / f"{FILE_STEMS[name]}.scp"
        options += [f"--{mode}_data_path_and_name_and_type", f"{scp},{name},kaldi_ark"]
    return options


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
