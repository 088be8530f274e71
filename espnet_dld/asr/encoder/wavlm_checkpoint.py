"""Pretrained WavLM weights from users' local files, in three formats.

Users get WavLM from Microsoft's release (``WavLM-Base+.pt``,
``WavLM-Large.pt``: a dict with ``cfg`` and a fairseq-style ``model`` state
dict), from Hugging Face (a ``microsoft/wavlm-base-plus`` folder with
``config.json`` and ``pytorch_model.bin`` or ``model.safetensors``), or from
torchaudio (a ``wavlm_model(...).state_dict()``).  :func:`read_wavlm_checkpoint`
turns any of them into torchaudio's key names (the mask embedding under the name of
torchaudio's ``MaskGenerator``), the one layout the encoder
knows, plus whatever architecture facts the file states (to refuse a file
whose architecture differs from the config in ways shapes cannot show, such
as ``layer_norm_first``).  Nothing here touches the network.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from espnet_dld.utils.checkpoint import CheckpointError, load_safetensors_file, load_torch_file

PathLike = Union[str, Path]

TORCHAUDIO, HUGGING_FACE, MICROSOFT = "torchaudio WavLM state dict", "Hugging Face WavLMModel", "Microsoft WavLM .pt"

# Weight norm of the positional convolution: old torch names -> torchaudio's (torch >= 2.1) names.
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
# Keys of pre-training heads or of another task's head: not part of the encoder.
_DROPPED = re.compile(r"^(label_embs_concat|final_proj\.|project_q\.|quantizer\.|"
                      r"lm_head\.|aux\.|proj\.)")


@dataclass
class WavLMCheckpoint:
    """Weights under torchaudio's names, and what the file says about the architecture."""

    path: Path
    format: str
    state: Dict[str, torch.Tensor]
    arch: Dict[str, Any] = field(default_factory=dict)  # encoder option name -> value stated by the file
    dropped: List[str] = field(default_factory=list)  # keys not used by the encoder (pre-training heads)


# -- architecture facts ---------------------------------------------------------
def parse_conv_layers(spec: Union[str, List], where: str) -> List[List[int]]:
    """fairseq's ``conv_feature_layers`` string, e.g. ``"[(512,10,5)] + [(512,3,2)] * 4"``,
    as ``[[dim, kernel, stride], ...]``, evaluated without ``eval``."""
    if not isinstance(spec, str):
        return [list(map(int, layer)) for layer in spec]

    def value(node):
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(ast.dump(node))

    try:
        layers = value(ast.parse(spec, mode="eval"))
        return [[int(d), int(k), int(s)] for d, k, s in layers]
    except Exception as e:
        raise CheckpointError(f"{where}: cannot read conv_feature_layers {spec!r}") from e


def _arch_from_microsoft_cfg(cfg: Dict[str, Any], path: Path) -> Dict[str, Any]:
    for flag in ("relative_position_embedding", "gru_rel_pos"):
        if flag in cfg and not cfg[flag]:
            raise CheckpointError(
                f"{path}: cfg.{flag} is false, but WavLM here (torchaudio's) always uses gated relative "
                "position embeddings; this checkpoint is not a WavLM Base/Base+/Large model"
            )
    names = {
        "encoder_embed_dim": "hidden_size", "encoder_layers": "num_blocks",
        "encoder_attention_heads": "attention_heads",
        "encoder_ffn_embed_dim": "linear_units", "conv_bias": "extractor_conv_bias", "conv_pos": "pos_conv_kernel",
        "conv_pos_groups": "pos_conv_groups", "num_buckets": "num_buckets", "max_distance": "max_distance",
        "layer_norm_first": "layer_norm_first", "normalize": "normalize_waveform",
    }
    arch = {ours: cfg[theirs] for theirs, ours in names.items() if theirs in cfg}
    if "extractor_mode" in cfg:
        arch["extractor_mode"] = "group_norm" if cfg["extractor_mode"] == "default" else cfg["extractor_mode"]
    if "conv_feature_layers" in cfg:
        arch["extractor_conv_layers"] = parse_conv_layers(cfg["conv_feature_layers"], f"{path} cfg")
    return arch


def _arch_from_hf_config(cfg: Dict[str, Any], preprocessor: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    names = {
        "hidden_size": "hidden_size", "num_hidden_layers": "num_blocks", "num_attention_heads": "attention_heads",
        "intermediate_size": "linear_units", "conv_bias": "extractor_conv_bias",
        "num_conv_pos_embeddings": "pos_conv_kernel", "num_conv_pos_embedding_groups": "pos_conv_groups",
        "num_buckets": "num_buckets", "max_bucket_distance": "max_distance", "do_stable_layer_norm": "layer_norm_first",
    }
    arch = {ours: cfg[theirs] for theirs, ours in names.items() if theirs in cfg}
    if "feat_extract_norm" in cfg:
        arch["extractor_mode"] = f"{cfg['feat_extract_norm']}_norm"
    if all(k in cfg for k in ("conv_dim", "conv_kernel", "conv_stride")):
        arch["extractor_conv_layers"] = [list(t) for t in zip(cfg["conv_dim"], cfg["conv_kernel"], cfg["conv_stride"])]
    if preprocessor is not None and "do_normalize" in preprocessor:
        arch["normalize_waveform"] = bool(preprocessor["do_normalize"])
    return arch


# -- key names --------------------------------------------------------------------
def _fuse_qkv(state: Dict[str, torch.Tensor], layer_prefix: str, names: Dict[str, str]) -> None:
    """Separate q/k/v projections (HF, Microsoft) -> torchaudio's fused ``in_proj``."""
    for kind in ("weight", "bias"):
        parts = [f"{layer_prefix}{names[p]}.{kind}" for p in ("q", "k", "v")]
        if all(p in state for p in parts):
            target = re.sub(r"^encoder\.layers\.", "encoder.transformer.layers.", layer_prefix)
            state[f"{target}attention.attention.in_proj_{kind}"] = torch.cat([state.pop(p) for p in parts])


def _rename(state: Dict[str, torch.Tensor], rules: List[tuple], path: Path, fmt: str) -> WavLMCheckpoint:
    out: Dict[str, torch.Tensor] = {}
    dropped = []
    for key, value in state.items():
        if _DROPPED.match(key):
            dropped.append(key)
            continue
        new = key
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        new = re.sub(r"pos_conv_embed\.conv\.(weight_g|weight_v)$",
                     lambda m: "pos_conv_embed.conv." + _WEIGHT_NORM[m.group(1)], new)
        out[new] = value  # an unknown key keeps its name and is reported as unexpected
    return WavLMCheckpoint(path, fmt, out, dropped=dropped)


_HF_RULES = [
    (r"^masked_spec_embed$", "mask_generator.mask_embedding"),
    (r"^feature_extractor\.", "feature_extractor."),
    (r"^feature_projection\.", "encoder.feature_projection."),
    (r"^encoder\.pos_conv_embed\.", "encoder.transformer.pos_conv_embed."),
    (r"^encoder\.layer_norm\.", "encoder.transformer.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.attention\.out_proj\.", r"encoder.transformer.layers.\1.attention.attention.out_proj."),
    (r"^encoder\.layers\.(\d+)\.attention\.(gru_rel_pos_const|gru_rel_pos_linear|rel_attn_embed)",
     r"encoder.transformer.layers.\1.attention.\2"),
    (r"^encoder\.layers\.(\d+)\.(layer_norm|feed_forward|final_layer_norm)\.", r"encoder.transformer.layers.\1.\2."),
]

_MICROSOFT_RULES = [
    (r"^mask_emb$", "mask_generator.mask_embedding"),
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^post_extract_proj\.", "encoder.feature_projection.projection."),
    (r"^layer_norm\.", "encoder.feature_projection.layer_norm."),
    (r"^encoder\.pos_conv\.0\.", "encoder.transformer.pos_conv_embed.conv."),
    (r"^encoder\.layer_norm\.", "encoder.transformer.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.transformer.layers.\1.attention.attention.out_proj."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.grep_linear\.",
     r"encoder.transformer.layers.\1.attention.gru_rel_pos_linear."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.grep_a$", r"encoder.transformer.layers.\1.attention.gru_rel_pos_const"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.",
     r"encoder.transformer.layers.\1.attention.rel_attn_embed."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.transformer.layers.\1.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.fc1\.", r"encoder.transformer.layers.\1.feed_forward.intermediate_dense."),
    (r"^encoder\.layers\.(\d+)\.fc2\.", r"encoder.transformer.layers.\1.feed_forward.output_dense."),
    (r"^encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.transformer.layers.\1.final_layer_norm."),
]


def _layer_prefixes(state: Dict[str, torch.Tensor]) -> List[str]:
    return sorted({m.group(0) for k in state for m in [re.match(r"^encoder\.layers\.\d+\.", k)] if m})


def from_hugging_face(state: Dict[str, torch.Tensor], path: Path) -> WavLMCheckpoint:
    """HF ``WavLMModel`` (or ``WavLMForCTC``: ``wavlm.`` prefix, ``lm_head`` dropped) -> torchaudio names."""
    state = {k[len("wavlm."):] if k.startswith("wavlm.") else k: v for k, v in state.items()}
    for prefix in _layer_prefixes(state):
        _fuse_qkv(state, prefix, {"q": "attention.q_proj", "k": "attention.k_proj", "v": "attention.v_proj"})
    return _rename(state, _HF_RULES, path, HUGGING_FACE)


def from_microsoft(state: Dict[str, torch.Tensor], path: Path) -> WavLMCheckpoint:
    """Microsoft's fairseq-style WavLM ``model`` dict -> torchaudio names."""
    state = dict(state)
    for prefix in _layer_prefixes(state):
        _fuse_qkv(state, prefix, {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj"})
    return _rename(state, _MICROSOFT_RULES, path, MICROSOFT)


def from_torchaudio(state: Dict[str, torch.Tensor], path: Path) -> WavLMCheckpoint:
    """torchaudio's own names (``aux`` CTC head dropped; old weight-norm names updated)."""
    return _rename(dict(state), [], path, TORCHAUDIO)


# -- reading files ----------------------------------------------------------------------
def _tensors_only(state: Any, path: Path) -> Dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def _read_hf_folder(folder: Path) -> WavLMCheckpoint:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder} is a folder without config.json: not a Hugging Face checkpoint folder")
    try:
        cfg = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{config_file} is not valid JSON: {e}") from e
    if cfg.get("model_type") != "wavlm":
        raise CheckpointError(
            f"{config_file} has model_type={cfg.get('model_type')!r}: not a WavLM checkpoint (expected 'wavlm')"
        )
    weights = [folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()]
    if not weights:
        raise CheckpointError(f"{folder} holds neither model.safetensors nor pytorch_model.bin")
    if weights[0].suffix == ".safetensors":
        state = load_safetensors_file(weights[0])
    else:
        state = _tensors_only(load_torch_file(weights[0]), weights[0])
    pre_file = folder / "preprocessor_config.json"
    preprocessor = json.loads(pre_file.read_text()) if pre_file.is_file() else None
    ckpt = from_hugging_face(state, weights[0])
    ckpt.arch = _arch_from_hf_config(cfg, preprocessor)
    return ckpt


def _looks_like(state: Dict[str, Any], marker: Callable[[str], bool]) -> bool:
    return any(marker(k) for k in state)


def read_wavlm_checkpoint(path: PathLike) -> WavLMCheckpoint:
    """Read a local WavLM checkpoint in any supported format (see the module
    docstring); anything else raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"pretrained WavLM checkpoint {path} does not exist (nothing is downloaded: see docs/wavlm.md "
            "for where to get WavLM-Base+.pt or the microsoft/wavlm-base-plus folder)"
        )
    if path.is_dir():
        return _read_hf_folder(path)
    if path.suffix == ".safetensors":
        state = load_safetensors_file(path)
    else:
        state = load_torch_file(path)
    if isinstance(state, dict) and "model" in state and "cfg" in state:
        cfg = state["cfg"]
        if not isinstance(cfg, dict):  # some fairseq dumps hold a config object
            cfg = dict(getattr(cfg, "__dict__", {}))
        ckpt = from_microsoft(_tensors_only(state["model"], path), path)
        ckpt.arch = _arch_from_microsoft_cfg(cfg, path)
        return ckpt
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} is not a WavLM checkpoint: expected a torchaudio or Hugging Face state dict, or Microsoft's "
            f"dict with 'cfg' and 'model'; got {type(state).__name__}"
            + (f" with keys {sorted(state)[:5]}" if isinstance(state, dict) else "")
        )
    if _looks_like(state, lambda k: k.startswith("encoder.transformer.")):
        return from_torchaudio(state, path)
    if _looks_like(state, lambda k: re.match(r"^(wavlm\.)?feature_projection\.projection\.", k) is not None):
        ckpt = from_hugging_face(state, path)
        hf_cfg = path.parent / "config.json"
        if hf_cfg.is_file():
            cfg = json.loads(hf_cfg.read_text())
            if cfg.get("model_type") == "wavlm":
                ckpt.arch = _arch_from_hf_config(cfg, None)
        return ckpt
    if _looks_like(state, lambda k: k.startswith("post_extract_proj.")):
        return from_microsoft(state, path)
    keys = sorted(state)
    raise CheckpointError(
        f"{path} holds a state dict in none of the supported WavLM formats (torchaudio, Hugging Face WavLMModel, "
        f"Microsoft WavLM .pt); first keys: {keys[:5]}"
    )
