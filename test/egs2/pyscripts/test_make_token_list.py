"""make_token_list: token list layout for char and bpe, the sentencepiece
model, deterministic re-runs, the --nbpe errors, and the round trip through
ESPnet's own tokenizer and TokenIDConverter."""
import random
from collections import Counter
from pathlib import Path

import pytest
import sentencepiece

from make_token_list import main

WORDS = "the a of zero one two three four five six seven eight nine speech model layer depth drop".upper().split()


def _text(tmp_path: Path, n: int = 200) -> Path:
    rng = random.Random(0)
    lines = [f"utt{i:04d} {' '.join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))}" for i in range(n)]
    lines.append(f"utt{n:04d}")  # empty transcript: skipped
    path = tmp_path / "text"
    path.write_text("\n".join(lines) + "\n")
    return path


def _transcripts(text: Path):
    rows = [line.split(maxsplit=1) for line in text.read_text().splitlines()]
    return [r[1] for r in rows if len(r) > 1]


def _espnet():
    import espnet_dld  # noqa: F401  (quiet ESPnet import)
    from espnet_dld.utils.quiet_imports import quiet_espnet_imports

    with quiet_espnet_imports():
        from espnet2.text.build_tokenizer import build_tokenizer
        from espnet2.text.token_id_converter import TokenIDConverter
    return build_tokenizer, TokenIDConverter


def _round_trip(token_type, tokens_txt: Path, bpemodel, lines):
    build_tokenizer, TokenIDConverter = _espnet()
    tokenizer = build_tokenizer(token_type=token_type, bpemodel=str(bpemodel) if bpemodel else None)
    converter = TokenIDConverter(token_list=str(tokens_txt))
    unk = converter.token2id["<unk>"]
    for line in lines:
        ids = converter.tokens2ids(tokenizer.text2tokens(line))
        assert unk not in ids, line
        assert 0 not in ids and len(converter.token_list) - 1 not in ids  # no <blank>, <sos/eos>
        assert tokenizer.tokens2text(converter.ids2tokens(ids)) == line


@pytest.mark.parametrize("bpemode, nbpe", [("unigram", 30), ("bpe", 40)])
def test_bpe(tmp_path, bpemode, nbpe):
    text = _text(tmp_path)
    out = tmp_path / "bpe"
    args = ["--token_type", "bpe", "--nbpe", str(nbpe), "--bpemode", bpemode, "--text", str(text), "--out_dir", str(out)]
    assert main(args) == 0
    lines = _transcripts(text)
    assert (out / "train.txt").read_text() == "".join(line + "\n" for line in lines)

    sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "bpe.model"))
    assert sp.get_piece_size() == nbpe
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    tokens = (out / "tokens.txt").read_text().splitlines()
    assert tokens == ["<blank>", "<unk>"] + [sp.id_to_piece(i) for i in range(3, nbpe)] + ["<sos/eos>"]
    assert len(set(tokens)) == len(tokens)
    _round_trip("bpe", out / "tokens.txt", out / "bpe.model", lines)

    # the same input gives the same bytes
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(args) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(before) == ["bpe.model", "tokens.txt", "train.txt"]


def test_char(tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 ABBA CAB\nu2 BC\nu3 DAD\n")
    out = tmp_path / "char"
    assert main(["--token_type", "char", "--text", str(text), "--out_dir", str(out)]) == 0
    tokens = (out / "tokens.txt").read_text().splitlines()
    # counts: A 5, B 5, C 2, D 2, <space> 1; ties in character order
    assert tokens == ["<blank>", "<unk>", "A", "B", "C", "D", "<space>", "<sos/eos>"]
    assert not (out / "bpe.model").exists()


def test_char_matches_espnet_counts_and_round_trips(tmp_path):
    text = _text(tmp_path)
    out = tmp_path / "char"
    assert main(["--token_type", "char", "--text", str(text), "--out_dir", str(out)]) == 0
    tokens = (out / "tokens.txt").read_text().splitlines()
    build_tokenizer, _ = _espnet()
    tokenizer = build_tokenizer(token_type="char")
    counts = Counter(t for line in _transcripts(text) for t in tokenizer.text2tokens(line))
    assert tokens[2:-1] == [t for t, _ in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))]
    _round_trip("char", out / "tokens.txt", None, _transcripts(text))


def test_nbpe_too_large(tmp_path, capsys):
    text = _text(tmp_path)
    out = tmp_path / "bpe"
    assert main(["--nbpe", "5000", "--text", str(text), "--out_dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--nbpe 5000 is larger than sentencepiece (unigram) can make" in err
    assert "use --nbpe" in err and "or smaller" in err
    assert not (out / "tokens.txt").exists() and not (out / "bpe.model").exists()


def test_nbpe_too_small(tmp_path, capsys):
    text = _text(tmp_path)
    assert main(["--nbpe", "8", "--text", str(text), "--out_dir", str(tmp_path / "b")]) == 1
    assert "--nbpe 8 is smaller than the" in capsys.readouterr().err


def test_text_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.write_text("u1\nu2 \n")
    assert main(["--text", str(empty), "--out_dir", str(tmp_path / "o")]) == 1
    assert "no non-empty transcript" in capsys.readouterr().err
    tab = tmp_path / "tab"
    tab.write_text("u1 A B\nu2 A\tB\n")
    assert main(["--token_type", "char", "--text", str(tab), "--out_dir", str(tmp_path / "o")]) == 1
    assert "utterance 'u2'" in capsys.readouterr().err
    assert main(["--text", str(tmp_path / "nope"), "--out_dir", str(tmp_path / "o")]) == 1
    assert "--text" in capsys.readouterr().err


def test_bpe_nlsyms_are_one_piece_each(tmp_path):
    text = tmp_path / "text"
    text.write_text("".join(f"utt{i:03d} THE [unk] MODEL {WORDS[i % len(WORDS)]}\n" for i in range(60)))
    for nlsyms, whole in (("", False), ("[unk]", True)):
        out = tmp_path / f"tokens{int(whole)}"
        assert main(["--token_type", "bpe", "--nbpe", "40", "--text", str(text), "--out_dir", str(out),
                     "--bpe_nlsyms", nlsyms]) == 0
        sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "bpe.model"))
        assert ("[unk]" in sp.encode("THE [unk] MODEL", out_type=str)) is whole
        assert ("[unk]" in (out / "tokens.txt").read_text().split()) is whole
