#!/usr/bin/env python3
"""ESPnet's ASR training CLI with espnet-dld's encoders and model registered.

Every option of ``python -m espnet2.bin.asr_train`` works unchanged
(``--config``, ``--resume``, ``--ngpu``, ``--init_param``, ...); in addition
``--encoder dld_conformer|dld_transformer`` and ``--model dld`` exist.
"""
import sys
from typing import List, Optional

from espnet_dld.asr.encoder.layer_gating import DDPConfigError
from espnet_dld.tasks.asr import ASRTask
from espnet_dld.utils.checkpoint import CheckpointError


def get_parser():
    return ASRTask.get_parser()


def main(cmd: Optional[List[str]] = None) -> None:
    r"""ASR training.

    A checkpoint that cannot be resumed (``--resume true`` into a folder
    trained with another configuration, or a truncated ``checkpoint.pth``)
    ends the run with one ``ERROR:`` line naming the file, the mismatching
    keys and what to do, instead of torch's traceback; so does a dynamic
    encoder under DDP without ``unused_parameters: true``.

    Example:
        % python -m espnet_dld.bin.asr_train --print_config --encoder dld_conformer --model dld
        % python -m espnet_dld.bin.asr_train --config conf/train_dld.yaml ...
    """
    try:
        ASRTask.main(cmd=cmd)
    except (CheckpointError, DDPConfigError) as e:
        print(f"ERROR: asr_train: {e}", file=sys.stderr)
        raise SystemExit(1) from e


if __name__ == "__main__":
    main()
