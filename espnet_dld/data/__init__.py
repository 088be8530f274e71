"""Data handling shared by the recipes' programs and the tools.

Modules:
    kaldi_dir     write, read (``read_kv``: the one key/value file reader) and validate Kaldi data dirs
    audio         resampling and int16 conversion
    atomic        write-to-temporary-then-rename helpers (files and folders)
    wav_plan      resumable, idempotent generation of wav files from a plan

Each recipe's corpus generator lives in its ``local/`` folder
(``egs2/<recipe>/asr1/local/``), the recipes' other Python helpers in
``egs2/TEMPLATE/dld1/pyscripts/``.
"""
