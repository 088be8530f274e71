"""filter_ctc_lengths: encoder frame counts equal ESPnet's, transcripts too
long for CTC leave the shape files with a count and a list, out-of-list
tokens are counted."""
from pathlib import Path

import pytest
import torch
import yaml

from filter_ctc_lengths import FrameRate, ctc_frames_needed, main, subsampled_frames


@pytest.mark.parametrize("input_layer", ["conv2d", "conv2d1", "conv2d2", "conv2d6", "conv2d8", "linear"])
def test_subsampled_frames_equal_espnet_encoder_lengths(input_layer):
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder

    enc = ConformerEncoder(20, output_size=8, attention_heads=2, linear_units=8, num_blocks=1,
                           input_layer=input_layer).eval()
    for n in (16, 17, 18, 19, 20, 23, 40, 41, 57):  # ESPnet refuses fewer than 16 frames for conv2d8
        with torch.no_grad():
            _, olens, _ = enc(torch.zeros(1, n, 20), torch.tensor([n]))
        assert subsampled_frames(n, input_layer) == int(olens[0]), n


def test_frame_rate_of_a_config_equals_the_model_encode_lengths(tiny_exp):
    from espnet_dld.asr.trained_model import load_trained_model

    cfg = tiny_exp.exps["teacher"] / "config.yaml"
    model, _ = load_trained_model(tiny_exp.exps["teacher"] / "1epoch.pth", cfg)
    model.eval()
    rate = FrameRate.from_config(cfg)
    for n in (1600, 4000, 4001, 4160, 8000):
        with torch.no_grad():
            _, olens = model.encode(torch.randn(1, n), torch.tensor([n]))
        assert rate.encoder_frames([n]) == int(olens[0]), n
    assert rate.encoder_frames([100, 80]) == subsampled_frames(100, "conv2d")  # feature input: no STFT


def test_ctc_frames_needed_counts_a_blank_between_repeats():
    assert ctc_frames_needed([]) == 0
    assert ctc_frames_needed([3, 4, 5]) == 3
    assert ctc_frames_needed([3, 3, 4, 4, 4]) == 8


def _stats(tmp_path: Path, texts: dict, samples: dict):
    d = tmp_path / "train"
    d.mkdir()
    (d / "speech_shape").write_text("".join(f"{u} {samples[u]}\n" for u in texts))
    (d / "text_shape.char").write_text("".join(f"{u} {len(t)}\n" for u, t in texts.items()))
    (tmp_path / "text").write_text("".join(f"{u} {t}\n" for u, t in sorted(texts.items())))
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\n<space>\nA\nB\n<sos/eos>\n")
    conf = {"frontend": "default", "frontend_conf": {"n_fft": 512, "hop_length": 160},
            "encoder_conf": {"input_layer": "conv2d"}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(conf))
    return d


def _args(tmp_path, d):
    return ["--speech_shape", str(d / "speech_shape"), "--text_shape", str(d / "text_shape.char"),
            "--text", str(tmp_path / "text"), "--config", str(tmp_path / "train.yaml"),
            "--token_type", "char", "--token_list", str(tmp_path / "tokens.txt")]


def test_too_long_transcripts_leave_the_shape_files(tmp_path, capsys, caplog):
    texts = {"u1": "AB AB", "u2": "A" * 7, "u3": "AB" * 6, "u4": "ABX", "u5": "AB" * 6 + "A"}
    d = _stats(tmp_path, texts, {u: 8000 for u in texts})
    # 0.5 s at hop 160: 51 STFT frames -> 12 encoder frames
    assert FrameRate.from_config(tmp_path / "train.yaml").encoder_frames([8000]) == 12
    assert main(_args(tmp_path, d)) == 0
    out = capsys.readouterr().out
    assert "kept 3 of 5 (transcript too long for CTC: 2" in out
    assert "with tokens outside the token list (mapped to <unk>, kept): 1" in out
    assert "1 of 5 transcripts" in caplog.text and "u4" in caplog.text
    assert (d / "speech_shape").read_text() == "u1 8000\nu3 8000\nu4 8000\n"
    assert (d / "text_shape.char").read_text() == "u1 5\nu3 12\nu4 3\n"
    assert (d / "ctc_too_long_utts.txt").read_text().splitlines() == [
        "u2\t13 CTC frames needed (tokens + repeats), encoder gives 12",  # 7 tokens + 6 repeats
        "u5\t13 CTC frames needed (tokens + repeats), encoder gives 12",
    ]
    # a rerun removes nothing more
    assert main(_args(tmp_path, d)) == 0
    assert "kept 3 of 3" in capsys.readouterr().out


def test_everything_too_long_is_refused(tmp_path, capsys):
    texts = {"u1": "AB" * 20, "u2": "BA" * 20}
    d = _stats(tmp_path, texts, {u: 8000 for u in texts})
    before = (d / "speech_shape").read_text()
    assert main(_args(tmp_path, d)) == 1
    err = capsys.readouterr().err
    assert f"every utterance of {d / 'speech_shape'} has a transcript too long for CTC" in err
    assert "input_layer" in err
    assert (d / "speech_shape").read_text() == before


def test_unknown_frame_rate_skips_with_a_warning(tmp_path, capsys, caplog):
    texts = {"u1": "AB" * 20}
    d = _stats(tmp_path, texts, {"u1": 8000})
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({"encoder_conf": {"input_layer": "wav2vec"}}))
    assert main(_args(tmp_path, d)) == 0
    assert "not checked" in capsys.readouterr().out
    assert "CTC length check skipped: input_layer 'wav2vec': frame rate unknown" in caplog.text
    assert (d / "speech_shape").read_text() == "u1 8000\n"
