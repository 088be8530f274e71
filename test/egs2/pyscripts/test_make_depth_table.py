"""make_depth_table.py: the per-depth dev table from a synthetic stage-13 decode tree,
read back as Speech2Text reads it; the errors for missing or unscored decodings."""
import pytest

from make_depth_table import main
from test_make_report import decode

from espnet_dld.asr.depth_table import read_depth_table, table_wers


def test_table_from_the_dev_decodings(tmp_path, capsys):
    exp = tmp_path / "asr_dld"
    for k, wer in ((1, 30.0), (2, 22.0), (4, 20.0)):
        decode(exp, "dev", f"depth{k}", k, wer=wer, seconds=float(k), layers=list(range(4 - k, 4)))
    model = exp / "valid.loss_ctc.ave.pth"
    model.write_bytes(b"weights")
    out = exp / "depth_table.yaml"
    assert main(["--decode_dir", str(exp / "decode_ctc_greedy" / "dev"), "--dev_set", "dev", "--num_blocks", "4",
                 "--model_file", str(model), "--out", str(out), "--decode_threads", "1"]) == 0
    assert "dev WER (%) per depth on dev: 1: 30.00, 2: 22.00, 4: 20.00" in capsys.readouterr().out
    record = read_depth_table(out, 4, model)
    assert table_wers(record) == {1: 30.0, 2: 22.0, 4: 20.0}
    assert record["depths"][2]["rtf"] == pytest.approx(0.2)  # 2 s for 10 s of audio
    assert record["depths"][1]["active_layers"] == [3] and record["dev_set"] == "dev"
    assert record["machine"]["decode_threads"] == 1 and record["num_utterances"] == 5


def test_missing_or_unscored_decodings_are_errors(tmp_path, capsys):
    model = tmp_path / "m.pth"
    model.write_bytes(b"w")
    args = ["--dev_set", "dev", "--num_blocks", "4", "--model_file", str(model), "--out", str(tmp_path / "t.yaml")]
    assert main(["--decode_dir", str(tmp_path / "nothing")] + args) == 1
    assert "run stage 13" in capsys.readouterr().err
    decode(tmp_path / "exp", "dev", "depth4", 4, seconds=1.0, layers=[0, 1, 2, 3])
    assert main(["--decode_dir", str(tmp_path / "exp" / "decode_ctc_greedy" / "dev")] + args) == 1
    assert "depths [4] were decoded but not scored" in capsys.readouterr().err
    assert not (tmp_path / "t.yaml").exists()
