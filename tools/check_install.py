"""Check an espnet-dld environment by running what users run.

``tools/install.sh`` calls this before it writes its "installed" stamp, and
on every later run before it trusts the stamp: importing ``espnet_dld``
alone once passed while ``torchaudio``'s compiled library could not load
beside the installed torch, so nothing that trains or decodes worked.  The
check imports the whole chain a recipe imports, builds a tiny
``dld_conformer`` model through ESPnet's ASR task and runs one forward and
backward pass.  On failure it prints which package failed, the error and
what to do, and exits with status 1.

    tools/venv/bin/python tools/check_install.py
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import traceback
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

REPAIR = "run 'bash tools/install.sh' again: it reinstalls the locked versions (tools/lock/)"

# (module to import, the package that provides it) in the order a recipe
# imports them: a failure names the first broken link.
IMPORTS: Tuple[Tuple[str, str], ...] = (
    ("numpy", "numpy"),
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("sentencepiece", "sentencepiece"),
    ("kaldiio", "kaldiio"),
    ("jiwer", "jiwer"),
    ("soundfile", "soundfile"),
    # before ESPnet: it makes ESPnet's first import quiet (no NLTK download
    # errors offline), as it does for every user of the package
    ("espnet_dld", "espnet_dld"),
    ("espnet2", "espnet"),
    ("espnet2.tasks.asr", "espnet"),
    ("espnet_model_zoo", "espnet_model_zoo"),
    ("espnet_dld.tasks.asr", "espnet_dld"),
)


class CheckFailed(Exception):
    """One step of the check failed; the message says which and what to do."""


def check_imports(imports: Sequence[Tuple[str, str]] = IMPORTS) -> List[str]:
    """Import each module; return ``"package version"`` lines."""
    from importlib import metadata

    versions = []
    for module, package in imports:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import-time failure is the user's problem to fix
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            raise CheckFailed(
                f"cannot import '{module}' (package '{package}'): {last}\n"
                f"  what to do: {REPAIR}; if it fails again, the locked '{package}' does not load "
                f"on this machine: delete tools/venv and report the error"
            ) from exc
        try:
            line = f"{package} {metadata.version(package)}"
        except metadata.PackageNotFoundError:
            line = f"{package} (no metadata)"
        if line not in versions:
            versions.append(line)
    return versions


def check_tiny_model() -> str:
    """Build a 2-block ``dld_conformer`` DLD model through ESPnet's ASR task
    and run one training step's forward and backward pass."""
    import logging
    import warnings

    import torch

    from espnet_dld.tasks.asr import ASRTask

    # ESPnet's notices while building and running a CTC-only model on the
    # CPU ("Set decoder to none", the CUDA autocast deprecation) are not
    # what this check reports.
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"espnet2\.")

    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.txt"
        tokens.write_text("\n".join(["<blank>", "<unk>", "a", "b", "c", "<sos/eos>"]) + "\n")
        args = ASRTask.get_parser().parse_args([
            "--output_dir", tmp,
            "--token_list", str(tokens),
            "--frontend_conf", "n_fft=512", "--frontend_conf", "hop_length=160", "--frontend_conf", "n_mels=20",
            "--normalize", "none",
            "--encoder", "dld_conformer",
            "--encoder_conf", "{output_size: 16, attention_heads: 2, linear_units: 32, num_blocks: 2, "
                              "cnn_module_kernel: 3, input_layer: conv2d, pos_enc_layer_type: rel_pos, "
                              "selfattention_layer_type: rel_selfattn, layer_drop_prob: 0.5}",
            "--model", "dld",
            "--model_conf", "ctc_weight=1.0", "--model_conf", "kd_weight=0.0",
        ])
        try:
            model = ASRTask.build_model(args)
        except Exception as exc:
            raise CheckFailed(f"ESPnet's ASR task could not build a dld_conformer model: {exc!r}\n"
                              f"  what to do: {REPAIR}") from exc
    torch.manual_seed(0)
    speech = torch.randn(2, 8000)
    lengths = torch.tensor([8000, 6400])
    text = torch.tensor([[2, 3, 4], [3, 4, -1]])
    text_lengths = torch.tensor([3, 2])
    try:
        loss, stats, _ = model(speech, lengths, text, text_lengths)
        loss.backward()
    except Exception as exc:
        raise CheckFailed(f"a forward/backward pass of the tiny dld_conformer model failed: {exc!r}\n"
                          f"  what to do: {REPAIR}") from exc
    if not torch.isfinite(loss):
        raise CheckFailed(f"the tiny dld_conformer model's loss is {loss.item()}, not finite\n  what to do: {REPAIR}")
    grads = sum(p.grad is not None for p in model.parameters())
    return f"tiny dld_conformer: loss {loss.item():.2f}, {grads} parameter tensors got gradients"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imports-only", action="store_true", help="skip the tiny model")
    args = parser.parse_args(argv)
    try:
        versions = check_imports()
        model_line = None if args.imports_only else check_tiny_model()
    except CheckFailed as exc:
        print(f"install check FAILED: {exc}", file=sys.stderr)
        return 1
    print("install check passed: " + ", ".join(versions))
    if model_line:
        print(f"install check passed: {model_line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
