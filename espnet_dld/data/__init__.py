"""Data preparation: Kaldi-style data directories for the espnet-dld recipes.

Modules:
    kaldi_dir     write, read and validate ``wav.scp``/``text``/``utt2spk``/``spk2utt``
    librispeech   LibriSpeech layout -> data dirs (plus a tiny fake tree for tests)
    fsdd          connected-digit utterances from the Free Spoken Digit Dataset
    synth_corpus  the embedded synthetic corpus spoken by eSpeak NG
    espeak        eSpeak NG backends (PyPI ``espeakng-loader`` or the ``espeak-ng`` binary)
    _espeak_server  stdlib-only helper process that runs libespeak-ng for ``espeak``
    grammar       the sentence grammar and word lists of the synthetic corpus
    audio         resampling and int16 conversion shared by the generators
    atomic        write-to-temporary-then-rename helpers
    wav_plan      resumable, idempotent generation of wav files from a plan
"""
