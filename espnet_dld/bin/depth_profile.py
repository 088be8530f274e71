#!/usr/bin/env python3
"""Measure a depth profile: which k encoder blocks to run at each depth k.

``python -m espnet_dld.bin.depth_profile --asr_model_file exp/asr_dld/valid.loss_ctc.ave.pth \\
    --data_path_and_name_and_type dump/raw/dev/wav.scp,speech,sound \\
    --data_path_and_name_and_type dump/raw/dev/text,text,text``

runs greedy backward elimination (:mod:`espnet_dld.asr.encoder.depth_search`)
on a dev set and writes ``depth_profile.yaml`` beside the model file, where
``Speech2Text``, ``export_depth`` and the recipe find it (format:
:mod:`espnet_dld.asr.encoder.depth_profile_file`).  Evenly spaced blocks (policy
``uniform``) are a guess; which blocks a trained dynamic model can best do
without is a property of that model, so it is measured on held-out data.

Criterion (``--criterion``): ``ctc_loss`` (default), the model's own CTC
loss of the encoder output at the block subset, summed per utterance and
averaged over utterances; or ``wer``, the word error rate of CTC best-path
decoding, ties broken by the CTC loss.  The data are read once, with ESPnet's
streaming iterator and the model's own preprocessor (as
``espnet2.bin.asr_inference`` reads them), and kept in memory for every
candidate subset.  The model is in eval mode and CTC dropout is off, so the
result is deterministic.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from espnet_dld.tasks.asr import ASRTask  # registers our classes with ESPnet
from espnet_dld.utils.quiet_imports import quiet_espnet_imports

with quiet_espnet_imports():
    from espnet2.text.build_tokenizer import build_tokenizer
    from espnet2.text.token_id_converter import TokenIDConverter
    from espnet2.utils.types import str2triple_str

from espnet_dld.asr.ctc_greedy_search import CTCGreedySearch  # noqa: E402
from espnet_dld.asr.encoder.depth_profile_file import default_profile_path, dump_depth_profile  # noqa: E402
from espnet_dld.asr.encoder.depth_search import greedy_backward_elimination  # noqa: E402
from espnet_dld.asr.encoder.layer_gating import DynamicDepthMixin  # noqa: E402
from espnet_dld.asr.trained_model import is_packed, load_trained_model, trained_model_files  # noqa: E402
from espnet_dld.data.kaldi_dir import read_keys  # noqa: E402
from espnet_dld.utils.checkpoint import file_sha256  # noqa: E402
from espnet_dld.utils.cli import add_log_level, run_cli  # noqa: E402
from espnet_dld.utils.scoring import corpus_wer  # noqa: E402

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
CRITERIA = ("ctc_loss", "wer")
Utterance = Tuple[str, Dict[str, np.ndarray]]


# -- data ----------------------------------------------------------------------
def check_dev_files(speech: Tuple[str, str, str], text: Tuple[str, str, str]) -> int:
    """Both files exist, the dev set is not empty and every utterance has a
    transcript; returns the number of utterances."""
    for (path, name, _), option in ((speech, "speech"), (text, "text")):
        if not Path(path).is_file():
            raise FileNotFoundError(f"the {option} file {path} (--data_path_and_name_and_type) does not exist")
    utts = read_keys(speech[0])
    if not utts:
        raise ValueError(f"the dev set {speech[0]} is empty: no utterance to measure the profile on")
    have = set(read_keys(text[0]))
    missing = [u for u in utts if u not in have]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"the text file {text[0]} has no transcript for {len(missing)} of the {len(utts)} utterances of "
            f"{speech[0]}: {shown}"
        )
    return len(utts)


def _single(batch: List[Utterance]) -> Utterance:
    return batch[0]


def load_utterances(
    data_path_and_name_and_type: Sequence[Tuple[str, str, str]], train_args: argparse.Namespace
) -> List[Utterance]:
    """Every utterance as ``(key, {name: array})``, read by ESPnet's streaming
    iterator and the model's preprocessor (text -> token ids), in file order."""
    loader = ASRTask.build_streaming_iterator(
        list(data_path_and_name_and_type),
        preprocess_fn=ASRTask.build_preprocess_fn(train_args, False),
        collate_fn=_single,
        dtype="float32",
        batch_size=1,
        num_workers=0,
        inference=not any(name == "text" for _, name, _ in data_path_and_name_and_type),
    )
    try:
        return [(key, dict(data)) for key, data in loader]
    except RuntimeError as e:  # ESPnet reads the files in lockstep
        files = ", ".join(path for path, _, _ in data_path_and_name_and_type)
        raise ValueError(f"cannot read {files} together ({e}); they must list the same utterances in the same "
                         "order (sort them by utterance id)") from None


def make_batches(
    utts: List[Utterance], batch_size: int, train_args: argparse.Namespace
) -> List[Tuple[List[str], Dict[str, torch.Tensor]]]:
    """Padded batches in file order, made by the task's collate function
    (speech padded with 0, text with -1, plus ``*_lengths``)."""
    collate = ASRTask.build_collate_fn(train_args, False)
    return [collate(utts[i:i + batch_size]) for i in range(0, len(utts), batch_size)]


# -- criterion -----------------------------------------------------------------
class DevCriterion:
    """Scores a block subset on the dev batches: ``(ctc_loss,)`` or ``(wer, ctc_loss)``."""

    def __init__(self, model: torch.nn.Module, batches, criterion: str, train_args: argparse.Namespace,
                 device: str = "cpu"):
        if criterion not in CRITERIA:
            raise ValueError(f"--criterion must be one of {list(CRITERIA)}, got {criterion!r}")
        self.model, self.batches, self.criterion, self.device = model, batches, criterion, device
        self.num_utterances = sum(len(keys) for keys, _ in batches)
        if criterion == "wer":
            self.search = CTCGreedySearch(model.ctc, model.sos, model.eos, getattr(model, "blank_id", 0))
            self.converter = TokenIDConverter(token_list=model.token_list)
            token_type = getattr(train_args, "token_type", None)
            if token_type is None:
                self.tokenizer = None
            elif token_type == "bpe":
                self.tokenizer = build_tokenizer(token_type, bpemodel=train_args.bpemodel)
            else:
                self.tokenizer = build_tokenizer(token_type=token_type)
            self.refs = [self.ids2text(ids[: n]) for _, b in batches
                         for ids, n in zip(b["text"].tolist(), b["text_lengths"].tolist())]
            keys = [k for keys, _ in batches for k in keys]
            empty = [k for k, ref in zip(keys, self.refs) if not ref.split()]
            if empty:
                raise ValueError(f"--criterion wer: {len(empty)} utterance(s) have an empty transcript, e.g. "
                                 f"{empty[0]!r}; use --criterion ctc_loss or filter them out")

    def ids2text(self, ids: Sequence[int]) -> str:
        tokens = self.converter.ids2tokens([i for i in ids if i != 0])
        return self.tokenizer.tokens2text(tokens) if self.tokenizer is not None else " ".join(tokens)

    @torch.no_grad()
    def __call__(self, layers: List[int]) -> Tuple[float, ...]:
        self.model.encoder.set_depth(layers=layers)
        total_loss, hyps = 0.0, []
        for _, batch in self.batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            enc, enc_lens = self.model.encode(batch["speech"], batch["speech_lengths"])
            if isinstance(enc, tuple):  # intermediate CTC: (output, intermediate outputs)
                enc = enc[0]
            n = enc.size(0)
            # ESPnet's CTC averages the per-utterance sums over the batch
            total_loss += float(self.model.ctc(enc, enc_lens, batch["text"], batch["text_lengths"])) * n
            if self.criterion == "wer":
                for i in range(n):
                    yseq = self.search(enc[i, : enc_lens[i]])[0].yseq
                    hyps.append(self.ids2text(yseq[1:-1].tolist()))
        loss = total_loss / self.num_utterances
        if not math.isfinite(loss):
            raise ValueError(f"the CTC loss with blocks {layers} is {loss}: the model or the data is broken")
        if self.criterion == "ctc_loss":
            return (loss,)
        return (corpus_wer(self.refs, hyps), loss)


def score_entry(criterion: str, score: Tuple[float, ...]) -> Any:
    """A score as written to the YAML: the CTC loss, or ``{wer, ctc_loss}``."""
    if criterion == "ctc_loss":
        return round(score[0], 6)
    return {"wer": round(score[0], 4), "ctc_loss": round(score[1], 6)}


# -- the tool ------------------------------------------------------------------
def build_model(
    asr_train_config: Optional[PathLike], asr_model_file: PathLike, device: str
) -> Tuple[torch.nn.Module, argparse.Namespace]:
    """The trained model (no teacher loaded, strict weights), ready to score
    subsets: eval mode, no CTC dropout, a dynamic encoder and a CTC branch."""
    model, train_args = load_trained_model(asr_model_file, asr_train_config, device)
    if not isinstance(model.encoder, DynamicDepthMixin):
        raise ValueError(
            f"model {asr_model_file}: its encoder {type(model.encoder).__name__} is static; a depth profile "
            "needs a dynamic (dld_*) encoder"
        )
    if getattr(model, "ctc", None) is None:
        raise ValueError(f"model {asr_model_file} has no CTC branch (ctc_weight 0); both criteria need one")
    model.eval()
    if getattr(model.ctc, "dropout_rate", 0.0):
        model.ctc.dropout_rate = 0.0  # ESPnet's CTC applies its dropout even in eval mode
    return model, train_args


def split_data_options(
    data_path_and_name_and_type: Optional[Sequence[Tuple[str, str, str]]], text: Optional[str]
) -> Tuple[Tuple[str, str, str], Tuple[str, str, str]]:
    """The speech and the text entry of the data options."""
    entries = list(data_path_and_name_and_type or [])
    if text is not None:
        entries.append((text, "text", "text"))
    by_name: Dict[str, List[Tuple[str, str, str]]] = {}
    for entry in entries:
        by_name.setdefault(entry[1], []).append(entry)
    unknown = sorted(set(by_name) - {"speech", "text"})
    if unknown:
        raise ValueError(f"--data_path_and_name_and_type: names must be speech and text, got {unknown}")
    for name in ("speech", "text"):
        if len(by_name.get(name, [])) != 1:
            raise ValueError(
                f"give exactly one {name} file: --data_path_and_name_and_type <path>,{name},"
                f"{'sound' if name == 'speech' else 'text'}" + (" (or --text <path>)" if name == "text" else "")
                + f"; got {len(by_name.get(name, []))}"
            )
    if by_name["text"][0][2] != "text":
        raise ValueError(f"the text file {by_name['text'][0][0]} must have type text, got {by_name['text'][0][2]!r}")
    return by_name["speech"][0], by_name["text"][0]


def depth_profile(
    data_path_and_name_and_type: Optional[Sequence[Tuple[str, str, str]]] = None,
    text: Optional[str] = None,
    asr_train_config: Optional[PathLike] = None,
    asr_model_file: Optional[PathLike] = None,
    model: Optional[PathLike] = None,
    criterion: str = "ctc_loss",
    out: Optional[PathLike] = None,
    batch_size: int = 1,
    ngpu: int = 0,
) -> Dict[str, Any]:
    """Search the profile and write it to ``out``; returns the record written."""
    if criterion not in CRITERIA:
        raise ValueError(f"--criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be at least 1, got {batch_size}")
    if model is not None:
        if asr_train_config is not None or asr_model_file is not None:
            raise ValueError("give --model (a packed zip) or --asr_train_config/--asr_model_file, not both")
        if out is None:
            raise ValueError(
                "--model: give --out; a packed model's files live in a cache folder (to ship the profile "
                "with the model, pack it with espnet2.bin.pack ... --option <exp>/depth_profile.yaml)"
            )
        if not is_packed(model):
            raise ValueError(f"--model {model} must be a packed model zip; give a .pth as --asr_model_file")
        asr_train_config, asr_model_file = trained_model_files(model, model_option="--model")
    elif asr_model_file is None:
        raise ValueError("give --asr_model_file (and --asr_train_config), or --model (a packed zip)")
    else:
        asr_train_config, asr_model_file = trained_model_files(asr_model_file, asr_train_config)
    speech_entry, text_entry = split_data_options(data_path_and_name_and_type, text)
    num_utts = check_dev_files(speech_entry, text_entry)
    out = Path(out) if out is not None else default_profile_path(asr_model_file)
    device = "cuda" if ngpu > 0 else "cpu"

    net, train_args = build_model(asr_train_config, asr_model_file, device)
    num_blocks = net.encoder.num_layers
    logger.info("reading %d utterances of %s", num_utts, speech_entry[0])
    utts = load_utterances([speech_entry, text_entry], train_args)
    evaluate = DevCriterion(net, make_batches(utts, batch_size, train_args), criterion, train_args, device)

    from tqdm import tqdm

    bar = tqdm(total=num_blocks * (num_blocks + 1) // 2, desc="depth profile (subsets)", unit="subset",
               disable=None)

    def scored(layers: List[int]) -> Tuple[float, ...]:
        score = evaluate(layers)
        bar.update(1)
        return score

    all_blocks = scored(list(range(num_blocks)))
    logger.info("all %d blocks: %s %s", num_blocks, criterion, score_entry(criterion, all_blocks))
    profile, steps = greedy_backward_elimination(num_blocks, scored)
    bar.close()
    for step in steps:
        logger.info("depth %d: removed block %d (%s %s) -> blocks %s", step["depth"], step["removed"], criterion,
                    score_entry(criterion, step["candidates"][step["removed"]]), profile[step["depth"]])

    record = {
        "num_blocks": num_blocks,
        "criterion": criterion,
        "data": {"speech": speech_entry[0], "text": text_entry[0]},
        "num_utterances": len(utts),
        "model_file": Path(asr_model_file).name,
        "model_sha256": file_sha256(asr_model_file),
        "all_blocks": score_entry(criterion, all_blocks),
        "profile": {k: profile[k] for k in sorted(profile, reverse=True)},
        "steps": [{"depth": s["depth"], "removed": s["removed"],
                   "candidates": {b: score_entry(criterion, v) for b, v in s["candidates"].items()}}
                  for s in steps],
    }
    dump_depth_profile(out, record)
    record["out"] = str(out)
    return record


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure which k encoder blocks to run at each depth k of a dynamic-depth model "
        "(greedy backward elimination on dev data); writes depth_profile.yaml",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--asr_train_config", default=None, help="config.yaml (default: beside --asr_model_file)")
    parser.add_argument("--asr_model_file", default=None, help="the model's .pth")
    parser.add_argument("--model", default=None, help="a packed model zip instead of config + pth (needs --out)")
    parser.add_argument("--data_path_and_name_and_type", type=str2triple_str, action="append", default=None,
                        help="dev data as for ESPnet: <scp>,speech,<sound|kaldi_ark> and <text>,text,text")
    parser.add_argument("--text", default=None, help="the transcripts (same as <text>,text,text)")
    parser.add_argument("--criterion", choices=CRITERIA, default="ctc_loss",
                        help="ctc_loss: mean per-utterance CTC loss; wer: CTC best-path WER (ties: CTC loss)")
    parser.add_argument("--out", default=None, help="output YAML (default: depth_profile.yaml beside the model file)")
    parser.add_argument("--batch_size", type=int, default=1,
                        help="utterances per forward pass (padding changes the numbers slightly; 1 as in decoding)")
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU, 1: one GPU")
    add_log_level(parser)
    return parser


def _report(r: Dict) -> str:
    lines = [f"{r['out']}: {r['criterion']} on {r['num_utterances']} utterances of {r['data']['speech']}"]
    return "\n".join(lines + [f"  depth {k}: blocks {layers}" for k, layers in r["profile"].items()])


def main(cmd: Optional[Sequence[str]] = None) -> int:
    return run_cli("depth_profile", get_parser(), depth_profile, cmd, _report)


if __name__ == "__main__":
    sys.exit(main())
