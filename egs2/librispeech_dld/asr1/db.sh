# LibriSpeech: the folder that holds the set folders (train-clean-100/,
# dev-clean/, ...), i.e. the "LibriSpeech" folder of the openslr archives.
# local/data.sh downloads into it only when it is absent and the network
# allows (openslr resource 12).
LIBRISPEECH=${LIBRISPEECH:-downloads/LibriSpeech}
# Pretrained WavLM for ./run.sh --encoder wavlm: Microsoft's WavLM-Base+.pt,
# or a Hugging Face microsoft/wavlm-base-plus folder (config.json +
# pytorch_model.bin or model.safetensors), or a torchaudio state dict.
# Nothing is downloaded; see docs/wavlm.md.
WAVLM_CHECKPOINT=${WAVLM_CHECKPOINT:-downloads/WavLM-Base+.pt}
