#!/usr/bin/env python3
"""One depth of a DLD model shipped as a plain ESPnet model: size on disk and
equivalence on real test data.

For every depth k of a packed DLD model, ``export_depth`` writes a static
ESPnet model (stock conformer with k blocks); then ESPnet's own
``espnet2.bin.asr_inference.Speech2Text``, in a process where ``espnet_dld``
cannot be imported, decodes the test utterances with each export, and
``espnet_dld.Speech2Text`` decodes them with the dynamic model at depth k,
both with the same search (CTC only, beam 1).  Reported per depth: blocks,
zip and model-file sizes against the full model, the export's own check
(largest encoder-output difference), the share of identical hypotheses, and
both WERs.

    python bench/export_cost.py --model egs2/mini_dld/asr1/exp/asr_dld_seed0/asr_model_dld.zip \\
        --data egs2/mini_dld/asr1/dump/raw/test --json bench/results/export_mini_dld.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from espnet_dld.data.kaldi_dir import read_kv  # noqa: E402
from espnet_dld.utils.espnet_only import BLOCK_ESPNET_DLD  # noqa: E402
from espnet_dld.utils.scoring import corpus_wer  # noqa: E402

DECODE = {"beam_size": 1, "ctc_weight": 1.0, "nbest": 1, "device": "cpu"}

# ESPnet alone: any import of espnet_dld fails in this process
ESPNET_ONLY = BLOCK_ESPNET_DLD + r"""
import json, sys
import soundfile as sf, torch
from espnet_model_zoo.downloader import ModelDownloader
from espnet2.bin.asr_inference import Speech2Text
args = json.loads(sys.argv[1])
torch.set_num_threads(1)
out = {}
for depth, zip_path in args["exports"].items():
    s2t = Speech2Text(**ModelDownloader(args["zoo"]).download_and_unpack(zip_path), **args["decode"])
    out[depth] = [s2t(sf.read(path, dtype="float32")[0])[0][0] for _, path in args["wavs"]]
out["espnet_dld_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] == "espnet_dld")
print(json.dumps(out))
"""


def resolve(path: str, data: Path) -> str:
    """A wav.scp path as an absolute one: relative paths are relative to the recipe (a parent of ``data``)."""
    for base in [Path.cwd(), *data.resolve().parents]:
        if (base / path).is_file():
            return str((base / path).resolve())
    raise SystemExit(f"{data}/wav.scp: {path} not found relative to the working directory or a parent of {data}")


def export_row(depth: int, export: Dict, refs: List[str], dynamic: List[str], static: List[str]) -> Dict:
    """One depth's export (the record ``export_depth`` returns) against the
    dynamic model: sizes, zip size over the full model's, hypotheses that are
    identical, and the WER of both."""
    return {"depth": depth, "layers": export["layers"], "zip_bytes": export["output_bytes"],
            "model_bytes": export["output_model_bytes"], "zip_over_full": export["output_bytes"] / export["input_bytes"],
            "max_abs_diff": export["max_abs_diff"], "identical_hypotheses": sum(a == b for a, b in zip(dynamic, static)),
            "utterances": len(refs), "wer_dynamic": corpus_wer(refs, dynamic), "wer_static": corpus_wer(refs, static)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="packed DLD model zip")
    parser.add_argument("--data", required=True, help="data dir with wav.scp and text")
    parser.add_argument("--max_utts", type=int, default=100)
    parser.add_argument("--depths", type=int, nargs="+", default=None, help="default: 1..N")
    parser.add_argument("--json")
    args = parser.parse_args()

    import torch

    from espnet_dld import Speech2Text
    from espnet_dld.bin.export_depth import export_depth

    torch.set_num_threads(1)
    data = Path(args.data)
    wavs = [[utt, resolve(path, data)] for _, utt, path in read_kv(data / "wav.scp")[: args.max_utts]]
    refs = {utt: text for _, utt, text in read_kv(data / "text", allow_empty_value=True)}
    ref_list = [refs[k] for k, _ in wavs]
    dynamic = Speech2Text.from_pretrained(args.model, **DECODE)
    depths = args.depths or list(range(1, dynamic.num_layers + 1))
    with tempfile.TemporaryDirectory(prefix="export_cost.") as tmp:
        exports: Dict[str, Dict] = {}
        for k in depths:
            exports[str(k)] = export_depth(Path(tmp) / f"model_d{k}.zip", depth=k, model=args.model)
        payload = {"exports": {k: e["outpath"] for k, e in exports.items()}, "zoo": str(Path(tmp) / "zoo"),
                   "decode": DECODE, "wavs": wavs}
        r = subprocess.run([sys.executable, "-c", ESPNET_ONLY, json.dumps(payload)], capture_output=True, text=True,
                           cwd=tmp, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
        if r.returncode != 0:
            raise SystemExit(f"decoding the exports with ESPnet alone failed:\n{r.stderr[-3000:]}")
        static = json.loads(r.stdout.strip().splitlines()[-1])
    if static.pop("espnet_dld_loaded"):
        raise SystemExit("espnet_dld was imported in the ESPnet-only process")
    rows = []
    for k in depths:
        dyn = [dynamic(sf.read(path, dtype="float32")[0], depth=k)[0][0] for _, path in wavs]
        rows.append(export_row(k, exports[str(k)], ref_list, dyn, static[str(k)]))
    full_bytes = exports[str(depths[0])]["input_bytes"]
    print(f"## {args.model}: export of each depth as a plain ESPnet model (full zip {full_bytes / 1e6:.2f} MB), "
          f"{len(wavs)} utterances of {data}, CTC beam 1")
    print("| depth | blocks | zip MB | / full zip | encoder max abs diff | identical hypotheses | WER dynamic % | WER ESPnet-only % |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r_ in rows:
        print(f"| {r_['depth']} | {r_['layers']} | {r_['zip_bytes'] / 1e6:.2f} | {r_['zip_over_full']:.2f} | "
              f"{r_['max_abs_diff']:.1e} | {r_['identical_hypotheses']}/{r_['utterances']} | "
              f"{r_['wer_dynamic']:.1f} | {r_['wer_static']:.1f} |")
    write_json(args.json, {"model": args.model, "data": str(data), "full_zip_bytes": full_bytes, "rows": rows})


if __name__ == "__main__":
    main()
