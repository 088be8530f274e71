"""A tiny end-to-end ESPnet experiment for the tests: generated tone
"speech", a character token list, stats collection and training through
``espnet_dld.bin.asr_train`` exactly as a recipe calls it.  With
``encoder="wavlm"`` the models are tiny random WavLMs on the raw waveform
(``input_size: 1``, no feature normalisation), initialised from a
Microsoft-format checkpoint written by ``wavlm_fixtures``."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf
import yaml

WORDS = {"one": 300.0, "two": 500.0, "three": 700.0, "four": 900.0}
FS = 16000

ENCODER_CONF = {
    "output_size": 16,
    "attention_heads": 2,
    "linear_units": 32,
    "num_blocks": 4,
    "cnn_module_kernel": 3,
    "input_layer": "conv2d",
}

# 7 conv layers with WavLM's kernels and strides (one frame per 20 ms), 16 channels
WAVLM_CONF = {
    "hidden_size": 16,
    "num_blocks": 4,
    "attention_heads": 2,
    "linear_units": 32,
    "extractor_conv_layers": [[16, 10, 5]] + [[16, 3, 2]] * 4 + [[16, 2, 2]] * 2,
    "pos_conv_kernel": 8,
    "pos_conv_groups": 2,
    "num_buckets": 16,
    "max_distance": 20,
}
ENCODERS = {"conformer": ("conformer", "dld_conformer", ENCODER_CONF), "wavlm": ("wavlm", "dld_wavlm", WAVLM_CONF),
            # the authors' Conv1d front end: teachers use our static_conformer
            "conv1d": ("static_conformer", "dld_conformer", dict(ENCODER_CONF, input_layer="conv1d4x"))}


def make_corpus(root: Path, n_utts: int, seed: int) -> Path:
    """Kaldi-style data dir of utterances made of word-specific tones."""
    rng = np.random.default_rng(seed)
    wav_dir, data_dir = root / "wav", root / "data"
    wav_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    wav_lines, text_lines, spk_lines = [], [], []
    for i in range(n_utts):
        words = list(rng.choice(list(WORDS), size=int(rng.integers(1, 4))))
        pieces = []
        for w in words:
            t = np.arange(int(0.25 * FS)) / FS
            pieces.append(0.3 * np.sin(2 * math.pi * WORDS[w] * t))
            pieces.append(np.zeros(int(0.05 * FS)))
        audio = np.concatenate(pieces) + 0.01 * rng.standard_normal(sum(len(p) for p in pieces))
        utt = f"spk{i % 2}-utt{i:03d}"
        path = wav_dir / f"{utt}.wav"
        sf.write(path, audio.astype(np.float32), FS, subtype="PCM_16")
        wav_lines.append(f"{utt} {path}")
        text_lines.append(f"{utt} {' '.join(words)}")
        spk_lines.append(f"{utt} spk{i % 2}")
    for name, lines in (("wav.scp", wav_lines), ("text", text_lines), ("utt2spk", spk_lines)):
        (data_dir / name).write_text("\n".join(sorted(lines)) + "\n")
    return data_dir


class TinyExperiment:
    def __init__(self, root: Path, encoder: str = "conformer"):
        self.root = Path(root)
        self.encoder = encoder
        self.static_encoder, self.dynamic_encoder, self.encoder_conf = ENCODERS[encoder]
        self.pretrained: Optional[Path] = None
        self.data = self.root / "corpus" / "data"
        self.token_list = self.root / "tokens.txt"
        self.stats = self.root / "stats"
        self.exps: Dict[str, Path] = {}

    # -- data ---------------------------------------------------------------
    def prepare(self) -> None:
        from espnet_dld.bin.asr_train import main

        make_corpus(self.root / "corpus", n_utts=8, seed=0)
        if self.encoder == "wavlm":
            from wavlm_fixtures import save_microsoft, torchaudio_wavlm

            conf = dict(self.encoder_conf, extractor_mode="group_norm", extractor_conv_bias=False, layer_norm_first=False)
            self.pretrained = save_microsoft(self.root / "WavLM-Tiny.pt", torchaudio_wavlm(conf), conf)
        chars = sorted({c for line in (self.data / "text").read_text().splitlines()
                        for c in line.split(maxsplit=1)[1].replace(" ", "_")})
        self.token_list.write_text("\n".join(["<blank>", "<unk>"] + chars + ["<sos/eos>"]) + "\n")
        main(self._data_args(self.stats) + ["--collect_stats", "true",
             "--train_shape_file", str(self.data / "wav.scp"),
             "--valid_shape_file", str(self.data / "wav.scp")] + self._model_args("teacher"))

    def _data_args(self, output_dir: Path) -> List[str]:
        d = self.data
        if self.encoder == "wavlm":
            features = ["--input_size", "1"]  # the raw waveform goes to the encoder
        else:
            features = ["--frontend_conf", "n_fft=512", "--frontend_conf", "hop_length=160", "--frontend_conf", "n_mels=20"]
        return features + [
            "--output_dir", str(output_dir), "--ngpu", "0", "--num_workers", "0",
            "--use_preprocessor", "true", "--token_type", "char", "--token_list", str(self.token_list),
            "--train_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
            "--train_data_path_and_name_and_type", f"{d}/text,text,text",
            "--valid_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
            "--valid_data_path_and_name_and_type", f"{d}/text,text,text",
        ]

    def _model_args(self, kind: str) -> List[str]:
        conf = dict(self.encoder_conf)
        if self.pretrained is not None:
            conf["pretrained_path"] = str(self.pretrained)
        if kind == "teacher":
            return ["--encoder", self.static_encoder, "--encoder_conf", yaml.safe_dump(conf, default_flow_style=True).strip(),
                    "--model_conf", "ctc_weight=1.0"]
        conf = dict(conf, layer_drop_prob=0.5)
        args = ["--encoder", self.dynamic_encoder, "--encoder_conf", yaml.safe_dump(conf, default_flow_style=True).strip(),
                "--model", "dld", "--model_conf", "ctc_weight=1.0"]
        if kind == "ld":
            return args + ["--model_conf", "kd_weight=0.0"]
        teacher = self.exps["teacher"]
        return args + ["--model_conf", f"teacher_config={teacher}/config.yaml",
                       "--model_conf", f"teacher_model={teacher}/1epoch.pth", "--model_conf", "kd_weight=1.0"]

    def train_args(self, kind: str, output_dir: Path) -> List[str]:
        s = self.stats
        normalize = ["--normalize", "none"] if self.encoder == "wavlm" else [
            "--normalize", "global_mvn", "--normalize_conf", f"stats_file={s}/train/feats_stats.npz"]
        return self._data_args(output_dir) + self._model_args(kind) + normalize + [
            "--train_shape_file", f"{s}/train/speech_shape", "--train_shape_file", f"{s}/train/text_shape",
            "--valid_shape_file", f"{s}/valid/speech_shape", "--valid_shape_file", f"{s}/valid/text_shape",
            "--batch_type", "folded", "--batch_size", "4", "--fold_length", "80000", "--fold_length", "150",
            "--max_epoch", "1", "--num_iters_per_epoch", "2", "--optim", "adam", "--optim_conf", "lr=0.002",
            "--num_att_plot", "0", "--seed", "0", "--keep_nbest_models", "1",
        ]

    def train(self, kind: str) -> Path:
        from espnet_dld.bin.asr_train import main

        out = self.root / "exp" / kind
        main(self.train_args(kind, out))
        self.exps[kind] = out
        return out

    def batch(self, n: int = 3) -> Tuple:
        """The first ``n`` utterances as a padded model batch:
        ``(speech, speech_lengths, text, text_lengths)``."""
        import torch

        lines = (self.data / "wav.scp").read_text().splitlines()[:n]
        texts = dict(line.split(maxsplit=1) for line in (self.data / "text").read_text().splitlines())
        waves = [torch.tensor(sf.read(line.split()[1])[0], dtype=torch.float32) for line in lines]
        tokens = self.token_list.read_text().split()
        ids = [torch.tensor([tokens.index(c) for c in texts[line.split()[0]].replace(" ", "_")]) for line in lines]
        speech = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        text = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=-1)
        return speech, torch.tensor([len(w) for w in waves]), text, torch.tensor([len(i) for i in ids])
