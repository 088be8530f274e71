#!/usr/bin/env bash
# tedlium3_dld: TED-LIUM release 3, legacy split (452 h of TED talks for
# training; ESPnet's dev and test), the DLD paper's third benchmark, at the
# paper's scale: 12-block conformer, BPE 256, CTC only, speed perturbation.
# One SPHERE recording per talk: data/<set>/segments, cut in stage 3
# (docs/tedlium3.md: data, disk, GPU time, the paper's figure).
#   ./run.sh --ngpu 4 --nj 32 --inference_nj 32
# ESPnet's conv2d front end instead of the DLD authors' Conv1d one, into exp/conv2d:
#   ./run.sh --encoder conformer_conv2d
set -euo pipefail

. ./utils/select_encoder.sh  # --encoder conformer|conformer_conv2d -> model_opts

./dld.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "test dev" \
    --feats_type raw \
    --fs 16000 \
    --speed_perturb_factors "0.9 1.0 1.1" \
    --token_type bpe \
    --nbpe 256 \
    --bpemode unigram \
    --bpe_nlsyms "[unk]" \
    --ngpu 1 \
    --num_workers 6 \
    --nj 16 \
    --inference_nj 16 \
    "${model_opts[@]}" \
    --inference_config conf/decode_ctc_greedy.yaml \
    "$@"
