#!/usr/bin/env python3
"""Stage 5: the token list (and sentencepiece model) the ASR model's output
layer is built on, laid out as ESPnet's ``asr.sh`` lays it out.

``tokens.txt`` has one token a line: ``<blank>`` (CTC blank, id 0),
``<unk>`` (id 1), the tokens, then ``<sos/eos>`` last.

* ``--token_type bpe``: sentencepiece (``--bpemode unigram|bpe``, ``--nbpe``
  pieces, ``--bpe_char_cover``, ``--bpe_input_sentence_size``, no
  user-defined symbols) is trained on the transcripts without their utterance
  ids (written to ``<out_dir>/train.txt``); the tokens are the model's pieces
  in model order without sentencepiece's own ``<unk>``, ``<s>``, ``</s>``.
  The model is ``<out_dir>/bpe.model``.
* ``--token_type char``: the characters of the transcripts, a space written
  ``<space>``, by descending frequency with ties in character order (ESPnet's
  ``tokenize_text --write_vocabulary`` breaks ties by first occurrence; the
  character order makes the list independent of the order of the lines).

The list is checked with ESPnet's own tokenizer and ``TokenIDConverter``: the
count of transcripts that would contain ``<unk>`` is logged (there are none
unless ``--bpe_char_cover`` < 1).  Files are written atomically; the same
input gives byte-identical files.

    python pyscripts/make_token_list.py --token_type bpe --nbpe 256 \
        --bpemode unigram --text dump/raw/train/text \
        --out_dir data/token_list/bpe_unigram256
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from espnet_dld.data.atomic import atomic_path, write_text_atomic
from espnet_dld.data.kaldi_dir import read_kv
from espnet_dld.utils.cli import add_log_level, run_tool, setup_logging

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

BLANK, UNK, SOS_EOS, SPACE = "<blank>", "<unk>", "<sos/eos>", "<space>"


def read_transcripts(text: PathLike) -> Dict[str, str]:
    """utt -> transcript of a Kaldi ``text`` file (empty ones left out)."""
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"--text {path}: file not found")
    out = {k: v for _, k, v in read_kv(path, allow_empty_value=True) if v.strip()}
    if not out:
        raise ValueError(f"--text {path}: no non-empty transcript")
    return out


def char_tokens(transcripts: Dict[str, str]) -> List[str]:
    """Characters of the transcripts by descending count, ties in character
    order; a space is ``<space>``."""
    counts: Counter = Counter()
    for utt, line in transcripts.items():
        for ch in line:
            if ch != " " and (ch.isspace() or not ch.isprintable()):
                raise ValueError(
                    f"utterance {utt!r}: transcript contains the character {ch!r}, which "
                    "cannot be a line of tokens.txt; normalize the text first"
                )
        counts.update(SPACE if ch == " " else ch for ch in line)
    for reserved in (BLANK, UNK, SOS_EOS):
        counts.pop(reserved, None)
    return [t for t, _ in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))]


def train_sentencepiece(
    train_txt: Path,
    nbpe: int,
    bpemode: str,
    char_cover: float,
    input_sentence_size: int,
    quiet: bool = True,
    user_defined_symbols: Sequence[str] = (),
) -> bytes:
    """Train a sentencepiece model on ``train_txt``; returns the model bytes.

    The model is returned in memory (not written by sentencepiece under a
    temporary prefix) so that no temporary name ends up inside the model and
    the bytes only depend on the input.  ``user_defined_symbols`` (ESPnet's
    ``--bpe_nlsyms``, e.g. ``[unk]``) each become one piece, never split.
    Raises ValueError suggesting a
    smaller ``--nbpe`` when the text cannot give that many pieces.
    """
    import sentencepiece

    writer = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            input=str(train_txt),
            model_writer=writer,
            vocab_size=nbpe,
            model_type=bpemode,
            character_coverage=char_cover,
            input_sentence_size=input_sentence_size,
            minloglevel=2 if quiet else 0,
            **({"user_defined_symbols": list(user_defined_symbols)} if user_defined_symbols else {}),
        )
    except RuntimeError as e:
        msg = " ".join(str(e).split())
        m = re.search(r"Please set it to a value <= (\d+)", msg)
        if m:
            raise ValueError(
                f"--nbpe {nbpe} is larger than sentencepiece ({bpemode}) can make from "
                f"{train_txt}: use --nbpe {m.group(1)} or smaller"
            ) from None
        m = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", msg)
        if m:
            raise ValueError(
                f"--nbpe {nbpe} is smaller than the {m.group(2)} pieces that the characters of "
                f"{train_txt} and sentencepiece's <unk>, <s>, </s> need: use --nbpe "
                f"{m.group(2)} or larger (or a smaller --bpe_char_cover than {char_cover})"
            ) from None
        raise ValueError(f"sentencepiece training on {train_txt} failed: {msg}") from None
    return writer.getvalue()


def bpe_tokens(model: bytes) -> List[str]:
    """Pieces of a sentencepiece model in model order, without its unknown
    and control pieces (``<unk>``, ``<s>``, ``</s>``)."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_proto=model)
    return [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not (sp.is_unknown(i) or sp.is_control(i))
    ]


def check_round_trip(
    transcripts: Dict[str, str], token_list: List[str], token_type: str, bpemodel: Optional[Path]
) -> List[str]:
    """Tokenize every transcript with ESPnet's tokenizer and ``TokenIDConverter``
    and decode it back; returns the utterances that hit ``<unk>`` or do not
    come back unchanged."""
    from espnet_dld.utils.quiet_imports import quiet_espnet_imports

    with quiet_espnet_imports():
        from espnet2.text.build_tokenizer import build_tokenizer
        from espnet2.text.token_id_converter import TokenIDConverter
    tokenizer = build_tokenizer(
        token_type=token_type, bpemodel=str(bpemodel) if bpemodel is not None else None
    )
    converter = TokenIDConverter(token_list=list(token_list), unk_symbol=UNK)
    unk_id = converter.token2id[UNK]
    bad = []
    for utt, line in transcripts.items():
        ids = converter.tokens2ids(tokenizer.text2tokens(line))
        back = tokenizer.tokens2text(converter.ids2tokens(ids))
        if unk_id in ids or " ".join(back.split()) != " ".join(line.split()):
            bad.append(utt)
    return bad


def make_token_list(
    text: PathLike,
    out_dir: PathLike,
    token_type: str = "bpe",
    nbpe: int = 30,
    bpemode: str = "unigram",
    bpe_char_cover: float = 1.0,
    bpe_input_sentence_size: int = 100000000,
    check: bool = True,
    quiet: bool = True,
    bpe_nlsyms: Sequence[str] = (),
) -> List[str]:
    """Write ``<out_dir>/tokens.txt`` (and ``bpe.model``, ``train.txt`` for
    bpe); returns the token list."""
    out_dir = Path(out_dir)
    if token_type not in ("bpe", "char"):
        raise ValueError(f"--token_type must be bpe or char, got {token_type!r}")
    if token_type == "bpe":
        if bpemode not in ("unigram", "bpe"):
            raise ValueError(f"--bpemode must be unigram or bpe, got {bpemode!r}")
        if nbpe <= 0:
            raise ValueError(f"--nbpe must be positive, got {nbpe}")
        if not 0 < bpe_char_cover <= 1:
            raise ValueError(f"--bpe_char_cover must be in (0, 1], got {bpe_char_cover}")
        if bpe_input_sentence_size <= 0:
            raise ValueError(f"--bpe_input_sentence_size must be positive, got {bpe_input_sentence_size}")
    transcripts = read_transcripts(text)
    logger.info("%d transcripts from %s", len(transcripts), text)

    bpemodel: Optional[Path] = None
    if token_type == "char":
        tokens = char_tokens(transcripts)
    else:
        train_txt = out_dir / "train.txt"
        write_text_atomic(train_txt, "".join(line + "\n" for line in transcripts.values()))
        logger.info("training sentencepiece (%s, %d pieces) on %s", bpemode, nbpe, train_txt)
        model = train_sentencepiece(
            train_txt, nbpe, bpemode, bpe_char_cover, bpe_input_sentence_size, quiet=quiet,
            user_defined_symbols=bpe_nlsyms,
        )
        bpemodel = out_dir / "bpe.model"
        if not (bpemodel.is_file() and bpemodel.read_bytes() == model):
            with atomic_path(bpemodel) as tmp:
                tmp.write_bytes(model)
        tokens = bpe_tokens(model)

    token_list = [BLANK, UNK] + [t for t in tokens if t not in (BLANK, UNK, SOS_EOS)] + [SOS_EOS]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "tokens.txt", "".join(t + "\n" for t in token_list))
    logger.info("%s: %d tokens", out_dir / "tokens.txt", len(token_list))

    if check:
        bad = check_round_trip(transcripts, token_list, token_type, bpemodel)
        if bad:
            logger.warning(
                "%d of %d transcripts do not round-trip through ESPnet's tokenizer and "
                "token list without <unk> (e.g. %s)",
                len(bad), len(transcripts), " ".join(bad[:5]),
            )
        else:
            logger.info("all %d transcripts round-trip through ESPnet's tokenizer without <unk>", len(transcripts))
    return token_list


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyscripts/make_token_list.py",
        description="Make the ESPnet token list (and sentencepiece model) from a text file (stage 5).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--token_type", default="bpe", choices=("bpe", "char"), help="token type")
    parser.add_argument("--text", required=True, help="Kaldi text file (utt transcript)")
    parser.add_argument("--out_dir", required=True, help="output directory (tokens.txt, bpe.model)")
    group = parser.add_argument_group("sentencepiece (--token_type bpe)")
    group.add_argument("--nbpe", type=int, default=30, help="number of pieces (sentencepiece vocab_size)")
    group.add_argument("--bpemode", default="unigram", choices=("unigram", "bpe"), help="sentencepiece model_type")
    group.add_argument("--bpe_char_cover", type=float, default=1.0, help="sentencepiece character_coverage")
    group.add_argument(
        "--bpe_input_sentence_size",
        type=int,
        default=100000000,
        help="sentencepiece input_sentence_size (lines sampled for training)",
    )
    group.add_argument(
        "--bpe_nlsyms",
        default="",
        help="non-linguistic symbols kept as one piece each, comma-separated (ESPnet's --bpe_nlsyms), e.g. [unk]",
    )
    add_log_level(parser)  # DEBUG also shows sentencepiece's own log
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 error)."""
    args = get_parser().parse_args(cmd)
    setup_logging(args.log_level)
    return run_tool("make_token_list", lambda: make_token_list(
        args.text,
        args.out_dir,
        token_type=args.token_type,
        nbpe=args.nbpe,
        bpemode=args.bpemode,
        bpe_char_cover=args.bpe_char_cover,
        bpe_input_sentence_size=args.bpe_input_sentence_size,
        bpe_nlsyms=[t for t in args.bpe_nlsyms.split(",") if t],
        quiet=args.log_level != "DEBUG",
    ))


if __name__ == "__main__":
    sys.exit(main())
