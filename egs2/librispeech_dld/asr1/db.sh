# LibriSpeech: the folder that holds the set folders (train-clean-100/,
# dev-clean/, ...), i.e. the "LibriSpeech" folder of the openslr archives.
# local/data.sh downloads into it only when it is absent and the network
# allows (openslr resource 12).
LIBRISPEECH=${LIBRISPEECH:-downloads/LibriSpeech}
