#!/usr/bin/env python3
"""ESPnet's ASR training CLI with espnet-dld's encoders and model registered.

Every option of ``python -m espnet2.bin.asr_train`` works unchanged
(``--config``, ``--resume``, ``--ngpu``, ``--init_param``, ...); in addition
``--encoder dld_conformer|dld_transformer`` and ``--model dld`` exist.
"""
from espnet_dld.tasks.asr import ASRTask


def get_parser():
    return ASRTask.get_parser()


def main(cmd=None):
    r"""ASR training.

    Example:
        % python -m espnet_dld.bin.asr_train --print_config --encoder dld_conformer --model dld
        % python -m espnet_dld.bin.asr_train --config conf/train_dld.yaml ...
    """
    ASRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
