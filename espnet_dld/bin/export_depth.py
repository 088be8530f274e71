#!/usr/bin/env python3
"""Export one depth of a dynamic-depth model as a plain static ESPnet model.

``python -m espnet_dld.bin.export_depth --model model.zip --depth 2 --outpath model_d2.zip``
(or ``--asr_train_config`` + ``--asr_model_file``; ``--layers i j ...``
for explicit blocks) writes a model-zoo package that ESPnet's own
``espnet2.bin.asr_inference.Speech2Text`` loads without espnet_dld: the
``dld_conformer``/``dld_transformer`` encoder becomes ESPnet's
``conformer``/``transformer`` with ``num_blocks: k`` holding the selected
blocks (chosen as ``Speech2Text(depth=k)`` chooses them: by the depth profile
the model carries, if any, else by the encoder's ``depth_policy``;
``--depth_policy``/``--depth_profile`` override), the ``dld`` model
becomes ESPnet's ``espnet`` model, and everything else is unchanged.  This
is how one depth is shipped to a device.

An encoder with an input layer ESPnet lacks (``input_layer: conv1d4x``)
becomes our ``static_conformer``/``static_transformer`` instead: the export
then needs espnet_dld to load, and its config says so under ``requires``
(the package, and the import that registers the encoder before ESPnet's
``Speech2Text`` builds the model; docs/frontend.md).

Before the package is moved into place, the static model is rebuilt from the
written files with stock ESPnet classes, its weights are loaded strictly and
its encoder output is compared with the dynamic model's at the same depth;
any difference is an error.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import shutil
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import yaml

import espnet_dld  # noqa: F401  (registers our classes when ESPnet's ASR task is imported)
from espnet_dld.utils.quiet_imports import quiet_espnet_imports

with quiet_espnet_imports():
    import espnet2.tasks.asr as espnet_asr
    from espnet2.main_funcs.pack_funcs import Archiver, find_path_and_change_it_recursive, pack

from espnet_dld.asr.dld_espnet_model import DLD_OPTIONS  # noqa: E402
from espnet_dld.asr.encoder.depth_profile_file import apply_depth_profile, default_profile_path  # noqa: E402
from espnet_dld.asr.encoder.layer_gating import DEPTH_POLICIES, DynamicDepthMixin  # noqa: E402
from espnet_dld.asr.encoder.subsampling import EXTRA_INPUT_LAYERS, ExtraInputLayers  # noqa: E402
from espnet_dld.asr.trained_model import is_packed, load_trained_model, trained_model_files  # noqa: E402
from espnet_dld.data.atomic import atomic_path  # noqa: E402
from espnet_dld.utils.checkpoint import load_state_dict_strict  # noqa: E402
from espnet_dld.utils.cli import add_log_level, run_cli  # noqa: E402

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
BLOCK_PREFIX = "encoder.encoders."
#: config entries of an unpacked (config + pth) model that name files inference needs
INFERENCE_FILE_KEYS = (("normalize_conf", "stats_file"), ("bpemodel",), ("token_list",))


# -- config --------------------------------------------------------------------
def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "espnet_dld"


def static_choice(choices, name: str, what: str, prefer_espnet: bool = False) -> Tuple[str, type]:
    """The registered name and class of the nearest registered base class of
    ``choices[name]`` (with ``prefer_espnet``, the nearest that is ESPnet's own,
    if any): the class our dynamic class extends."""
    cls = choices.get_class(name)
    found = [(n, c) for base in cls.__mro__[1:] for n, c in choices.classes.items() if c is base]
    if not found:
        raise ValueError(f"{what} {name!r} ({cls.__name__}) extends no registered {what}; it has no static form")
    return sorted(found, key=lambda nc: prefer_espnet and _ours(nc[1]))[0]


def static_encoder_name(name: str, input_layer: Optional[str] = None) -> str:
    """The name of the static encoder that dynamic encoder ``name`` extends:
    ESPnet's, or ours where ``input_layer`` is one ESPnet lacks."""
    if not issubclass(espnet_asr.encoder_choices.get_class(name), DynamicDepthMixin):
        raise ValueError(f"encoder {name!r} is static already; there is no depth to export")
    extra_input_layer = input_layer in EXTRA_INPUT_LAYERS
    static_name, static_cls = static_choice(espnet_asr.encoder_choices, name, "encoder",
                                            prefer_espnet=not extra_input_layer)
    if _ours(static_cls) and not (extra_input_layer and issubclass(static_cls, ExtraInputLayers)):
        raise ValueError(
            f"encoder {name!r}: its static form {static_name!r} ({static_cls.__name__}) is espnet_dld's own class, "
            "not ESPnet's, so no plain ESPnet model can hold it; decode it with espnet_dld.Speech2Text(depth=k)"
        )
    return static_name


def static_encoder_config(conf: Dict[str, Any], layers: List[int]) -> Tuple[str, Dict[str, Any]]:
    """Encoder name and options of the static encoder holding ``layers``
    (block indices of the dynamic encoder, in order)."""
    static_name = static_encoder_name(conf["encoder"], (conf.get("encoder_conf") or {}).get("input_layer"))
    enc_conf = {k: v for k, v in (conf.get("encoder_conf") or {}).items() if k not in DynamicDepthMixin.DYNAMIC_OPTIONS}
    enc_conf["num_blocks"] = len(layers)
    if enc_conf.get("interctc_layer_idx"):
        enc_conf["interctc_layer_idx"] = remap_interctc(enc_conf["interctc_layer_idx"], layers)
    return static_name, enc_conf


def remap_interctc(interctc_layer_idx: Sequence[int], layers: List[int]) -> List[int]:
    """Intermediate CTC after block number ``m`` (1-based, ESPnet's
    convention) becomes the number of that block among ``layers``; a block
    that is not kept, or that becomes the last one (ESPnet allows no
    intermediate CTC there), cannot be represented."""
    remapped = []
    for m in interctc_layer_idx:
        if m - 1 not in layers:
            raise ValueError(
                f"encoder_conf.interctc_layer_idx contains {m} (after block {m - 1}), but the exported blocks "
                f"are {layers}: choose layers that keep block {m - 1}"
            )
        new = layers.index(m - 1) + 1
        if new >= len(layers):
            raise ValueError(
                f"encoder_conf.interctc_layer_idx contains {m} (after block {m - 1}), which is the last of the "
                f"exported blocks {layers}; ESPnet allows intermediate CTC only before the last block"
            )
        remapped.append(new)
    return remapped


def static_config(conf: Dict[str, Any], layers: List[int]) -> Dict[str, Any]:
    """The training config of the static depth-k model."""
    new = copy.deepcopy(conf)
    new["encoder"], new["encoder_conf"] = static_encoder_config(conf, layers)
    model_cls = espnet_asr.model_choices.get_class(conf.get("model") or "espnet")
    if _ours(model_cls):
        new["model"], base = static_choice(espnet_asr.model_choices, conf["model"], "model")
        if _ours(base):
            raise ValueError(f"model {conf['model']!r}: its static form {new['model']!r} is espnet_dld's own class")
        new["model_conf"] = {k: v for k, v in (conf.get("model_conf") or {}).items() if k not in DLD_OPTIONS}
    if _ours(espnet_asr.encoder_choices.get_class(new["encoder"])):
        new["requires"] = loading_requirements(new["encoder"], new["encoder_conf"].get("input_layer"))
    return new


def loading_requirements(encoder: str, input_layer: Optional[str]) -> Dict[str, str]:
    """What a process needs before ESPnet can build a model whose encoder is ours
    (the exported config's ``requires`` entry, which ESPnet itself ignores)."""
    from espnet_dld.version import __version__

    return {
        "python_package": f"espnet_dld>={__version__}",
        "import": "espnet_dld",
        "why": f"encoder {encoder!r} (input_layer {input_layer!r}) is espnet_dld's: ESPnet has no such input layer. "
               "`import espnet_dld` registers it; then ESPnet's own espnet2.bin.asr_inference.Speech2Text loads "
               "this model",
    }


def block_state_dict(state: Dict[str, torch.Tensor], layers: List[int]) -> Dict[str, torch.Tensor]:
    """Keep the encoder blocks ``layers``, renumbered 0..k-1 in that order;
    every other weight unchanged.  The module versions torch keeps in
    ``state._metadata`` (read when loading) are renumbered alike."""
    new_index = {str(old): str(new) for new, old in enumerate(layers)}

    def renamed(key: str) -> Optional[str]:
        if not key.startswith(BLOCK_PREFIX):
            return key
        index, dot, rest = key[len(BLOCK_PREFIX):].partition(".")
        return f"{BLOCK_PREFIX}{new_index[index]}{dot}{rest}" if index in new_index else None

    out = OrderedDict((renamed(k), v) for k, v in state.items() if renamed(k) is not None)
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        out._metadata = OrderedDict((renamed(k), v) for k, v in metadata.items() if renamed(k) is not None)
    return out


# -- files ---------------------------------------------------------------------
def package_files(model: PathLike) -> Tuple[str, str, Dict[str, str], str]:
    """Unpack a packed model: config, model file, the other files of the
    package as ``{unpacked path: name in the package}``, and the config's
    name in the package."""
    if not is_packed(model):
        raise ValueError(f"--model {model} must be a packed model zip (espnet2.bin.pack); give a .pth as --asr_model_file")
    config, model_file = trained_model_files(model, model_option="--model")
    with Archiver(Path(model)) as archive:
        infos = {archive.get_name_from_info(i): i for i in archive}
        meta = next(n for n in infos if Path(n).name == "meta.yaml")  # unpacking checked there is one
        meta_yaml = yaml.safe_load(archive.extractfile(infos[meta]))
    config_name = meta_yaml["yaml_files"]["asr_train_config"]
    root = Path(config[: -len(config_name)])
    packed = set(meta_yaml["yaml_files"].values()) | set(meta_yaml["files"].values()) | {meta}
    others = {str(root / n): n for n in infos if n not in packed and not n.endswith("/")}
    return config, model_file, others, config_name


def inference_files(conf: Dict[str, Any]) -> Dict[str, str]:
    """The file paths a config names for inference (feature stats, BPE
    model, a token list file), as ``{option: path}``."""
    found = {}
    for keys in INFERENCE_FILE_KEYS:
        value = conf
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if isinstance(value, str):
            found[".".join(keys)] = value
    return found


def config_files(conf: Dict[str, Any], out_dir: str) -> Dict[str, str]:
    """Existing files of :func:`inference_files`, as ``{path in the config:
    name in the package}``: a path relative to the working directory keeps
    its name, as ESPnet's pack does; any other goes into the exported
    model's folder."""
    files = {}
    for value in inference_files(conf).values():
        path = Path(value)
        if not path.is_file():
            continue
        try:
            name = str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
        except ValueError:
            name = f"{out_dir}/{path.name}"
        if name.startswith(".."):
            name = f"{out_dir}/{path.name}"
        files[value] = name
    return files


def size_of(path: PathLike) -> int:
    return Path(path).stat().st_size


# -- export --------------------------------------------------------------------
def check_equivalent(dynamic: torch.nn.Module, static: torch.nn.Module, input_size: Optional[int]) -> float:
    """Encoder outputs of both models on a fixed random batch must agree;
    returns the largest difference."""
    gen = torch.Generator().manual_seed(0)
    if dynamic.frontend is not None:
        speech, lengths = torch.randn(2, 16000, generator=gen), torch.tensor([16000, 11000])
    else:
        speech, lengths = torch.randn(2, 200, input_size, generator=gen), torch.tensor([200, 140])
    with torch.no_grad():
        (a, a_len), (b, b_len) = dynamic.eval().encode(speech, lengths), static.eval().encode(speech, lengths)
    if a.shape != b.shape or not torch.equal(a_len, b_len) or not torch.allclose(a, b, atol=1e-5, rtol=1e-4):
        diff = (a - b).abs().max().item() if a.shape == b.shape else float("inf")
        raise RuntimeError(f"the static model's encoder output differs from the dynamic model's (max |diff| {diff})")
    return (a - b).abs().max().item()


def export_depth(
    outpath: PathLike,
    depth: Optional[int] = None,
    layers: Optional[Sequence[int]] = None,
    model: Optional[PathLike] = None,
    asr_train_config: Optional[PathLike] = None,
    asr_model_file: Optional[PathLike] = None,
    depth_profile: Optional[PathLike] = None,
    depth_policy: Optional[str] = None,
) -> Dict[str, Any]:
    """Write ``outpath`` (a zip), a static ESPnet model running the blocks
    that ``depth`` (or ``layers``) selects in the dynamic model, as
    ``Speech2Text`` selects them (a carried depth profile is used unless
    ``depth_policy`` overrides); returns the blocks, the policy, the sizes
    and the check's largest difference."""
    outpath = Path(outpath)
    if outpath.suffix != ".zip":
        raise ValueError(f"--outpath {outpath} must end with .zip (a model-zoo package)")
    if (depth is None) == (layers is None):
        raise ValueError(f"give exactly one of --depth ({depth!r}) or --layers ({layers!r})")
    if layers is not None and (depth_profile is not None or depth_policy is not None):
        raise ValueError("--depth_policy and --depth_profile choose the blocks of --depth; --layers names them itself")
    if model is not None:
        if asr_train_config is not None or asr_model_file is not None:
            raise ValueError("give --model (a packed zip) or --asr_train_config/--asr_model_file, not both")
        config_path, model_path, others, packed_config = package_files(model)
        input_path, exp_dir = Path(model), str(Path(packed_config).parent)
    else:
        if asr_model_file is None:
            raise ValueError("give --model (a packed zip), or --asr_model_file (and --asr_train_config)")
        config_path, model_path = trained_model_files(asr_model_file, asr_train_config)
        input_path, others = Path(model_path), {}
        exp_dir = f"exp/{Path(config_path).resolve().parent.name}"
    conf = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    if not isinstance(conf, dict) or "encoder" not in conf:
        raise ValueError(f"config file {config_path} is not an ESPnet ASR training config (no 'encoder')")
    try:
        static_encoder_name(conf["encoder"], (conf.get("encoder_conf") or {}).get("input_layer"))  # refuse early
    except ValueError as e:
        raise ValueError(f"config {config_path}: {e}") from None
    for option, value in inference_files(conf).items():
        if not Path(value).is_file():
            raise FileNotFoundError(f"config {config_path}: {option} names {value}, which does not exist")

    dynamic, _ = load_trained_model(model_path, config_path)
    policy, profile_path = None, None
    if depth is not None:  # the same choice as Speech2Text(depth=k)
        policy, profile_path = apply_depth_profile(dynamic.encoder, model_path, depth_profile, depth_policy)
    chosen = dynamic.encoder.set_depth(depth=depth, layers=layers)
    num_layers = dynamic.encoder.num_layers
    enc_conf = conf.get("encoder_conf") or {}
    if enc_conf.get("keep_final_norm_when_dropped") and len(chosen) < num_layers:
        raise ValueError(
            f"config {config_path}: encoder_conf.keep_final_norm_when_dropped is true, so each dropped block still "
            f"applies its final LayerNorm in the dynamic model; a static {len(chosen)}-block encoder cannot do that, "
            f"so it would not be equivalent (only depth {num_layers}, all blocks, can be exported)"
        )
    new_conf = static_config(conf, chosen)
    tag = f"depth{depth}" if depth is not None else "layers" + "-".join(map(str, chosen))

    exp_dir = f"{exp_dir}_{tag}" if exp_dir != "." else f"exp/{tag}"
    # a carried depth profile describes the dynamic model, not the export
    carried = default_profile_path(model_path).resolve()
    others = {old: name for old, name in others.items() if Path(old).resolve() != carried}
    for old, name in others.items():  # the other files of the package keep their names
        new_conf = find_path_and_change_it_recursive(new_conf, old, name)
    # files the config names outside the package (unpacked input, or a package
    # made from absolute paths) are put into it, so the export is self-contained
    outside = {old: name for old, name in config_files(new_conf, exp_dir).items() if old not in others.values()}
    for old, name in outside.items():
        new_conf = find_path_and_change_it_recursive(new_conf, old, name)
    others = {**others, **outside}
    sources = {name: Path(old).resolve() for old, name in others.items()}
    outpath.parent.mkdir(parents=True, exist_ok=True)
    target = outpath.resolve()  # before chdir
    # ESPnet's pack names files relative to the working directory (and its
    # unpack rewrites only such names in the config), so copy them into a
    # folder and pack from there
    with tempfile.TemporaryDirectory(prefix="export_depth.") as staging, contextlib.chdir(staging):
        config_name, model_name = f"{exp_dir}/config.yaml", f"{exp_dir}/{Path(model_path).name}"
        Path(exp_dir).mkdir(parents=True)
        Path(config_name).write_text(yaml.safe_dump(new_conf, sort_keys=False), encoding="utf-8")
        torch.save(block_state_dict(dynamic.state_dict(), chosen), model_name)
        for name, source in sources.items():
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, name)
        # the files as ESPnet will read them: stock classes, strict weights, same encoder output
        static, _ = espnet_asr.ASRTask.build_model_from_file(config_name, None, "cpu")
        load_state_dict_strict(static, model_name)
        max_diff = check_equivalent(dynamic, static, conf.get("input_size"))
        with atomic_path(target) as tmp_zip, contextlib.redirect_stdout(io.StringIO()) as listing:
            pack(files={"asr_model_file": model_name}, yaml_files={"asr_train_config": config_name},
                 option=sorted(sources), outpath=tmp_zip)  # pack prints its listing to stdout
        logger.debug("pack: %s", listing.getvalue())
        out_model_size = size_of(model_name)

    result = {
        "layers": chosen, "num_layers": num_layers, "outpath": str(outpath), "max_abs_diff": max_diff,
        "depth_policy": policy, "depth_profile": None if profile_path is None else str(profile_path),
        "input": str(input_path), "input_bytes": size_of(input_path), "input_model_bytes": size_of(model_path),
        "output_bytes": size_of(outpath), "output_model_bytes": out_model_size, "requires": new_conf.get("requires"),
    }
    if result["requires"] is not None:
        logger.warning("%s needs espnet_dld to load (its config's 'requires'): %s", outpath, result["requires"]["why"])
    if policy is not None:
        logger.info("blocks of depth %d chosen by depth policy %s%s", depth, policy,
                    f" ({profile_path})" if policy == "profile" else "")
    logger.info(
        "exported blocks %s of %d as a static %s encoder (max encoder |diff| %.2g): %s %d bytes (model file %d) "
        "-> %s %d bytes (model file %d)", chosen, num_layers, new_conf["encoder"], max_diff, input_path,
        result["input_bytes"], result["input_model_bytes"], outpath, result["output_bytes"], out_model_size)
    return result


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export one depth of a dynamic-depth ASR model as a plain static ESPnet model (zip)")
    parser.add_argument("--model", default=None, help="packed model zip (espnet2.bin.pack) of the dynamic model")
    parser.add_argument("--asr_train_config", default=None,
                        help="config.yaml of the dynamic model (instead of --model)")
    parser.add_argument("--asr_model_file", default=None,
                        help=".pth of the dynamic model (instead of --model)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--depth", type=int, default=None,
                       help="number of blocks, chosen as Speech2Text(depth=k) chooses them: by the model's depth "
                       "profile if it carries one, else by the encoder's depth_policy")
    group.add_argument("--layers", type=int, nargs="+", default=None, help="explicit 0-based block indices")
    parser.add_argument("--depth_policy", choices=DEPTH_POLICIES, default=None,
                        help="override how --depth chooses its blocks (default: profile if the model carries "
                        "depth_profile.yaml, else the encoder config's depth_policy)")
    parser.add_argument("--depth_profile", default=None,
                        help="depth profile YAML (default: depth_profile.yaml beside the model file, if any)")
    parser.add_argument("--outpath", required=True, help="output zip, e.g. model_d2.zip")
    add_log_level(parser)
    return parser


def _report(r: Dict[str, Any]) -> str:
    return (f"{r['input']}: {r['input_bytes']} bytes -> {r['outpath']}: {r['output_bytes']} bytes "
            f"(blocks {r['layers']} of {r['num_layers']})")


def main(cmd: Optional[Sequence[str]] = None) -> int:
    return run_cli("export_depth", get_parser(), export_depth, cmd, _report)


if __name__ == "__main__":
    sys.exit(main())
