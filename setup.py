"""espnet-dld: dynamic-depth ASR (Distillation-based Layer Dropping) on ESPnet."""
from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec((Path(__file__).parent / "espnet_dld" / "version.py").read_text(), version)

install_requires = [
    # espnet 202511 is the last release for Python 3.11; 202611 needs >= 3.12.
    "espnet>=202511",
    # Ranges for installing into your own environment; tools/install.sh
    # installs the exact tested versions of tools/lock/ instead.
    # torchaudio's compiled library only loads beside the torch it was built
    # for, and espnet2.tasks.asr imports torchaudio: torchaudio 2.11.1 fails
    # beside torch 2.11.0 ("undefined symbol:
    # torch_exception_get_what_without_backtrace"), so it is excluded.
    "torch>=2.11,<2.12",
    "torchaudio>=2.11,<2.12,!=2.11.1",
    "espnet_model_zoo>=0.1.7",
    "sentencepiece>=0.1.99",
    "kaldiio>=2.18",
    "jiwer>=3.0",
    # ESPnet's CER/WER reporting during training; espnet 202611 no longer installs it.
    "editdistance>=0.6",
    "soundfile>=0.12",
    "scipy>=1.10",
    # eSpeak NG library and voices for the embedded synthetic corpus (mini_dld)
    "espeakng-loader>=0.2.4,<0.3",
    # Hugging Face WavLM checkpoint folders (model.safetensors)
    "safetensors>=0.4",
    "PyYAML>=6.0",
    "tqdm>=4.60",
    # ESPnet's trainer needs these at start-up (its 'train' extra pins an old
    # pillow, so we name them directly).
    "tensorboard>=2.10",
    "matplotlib>=3.7",
    # inflect 7 (pulled in by g2p_en) adds ~5 s to every `import espnet2`.
    "inflect<7",
]

setup(
    name="espnet_dld",
    version=version["__version__"],
    description="Dynamic-depth speech recognition with Distillation-based Layer Dropping on ESPnet",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    if (Path(__file__).parent / "README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["espnet_dld", "espnet_dld.*"]),
    install_requires=install_requires,
    extras_require={"test": ["pytest>=7", "pytest-timeout>=2.1"]},
    entry_points={
        "console_scripts": [
            "dld_asr_train=espnet_dld.bin.asr_train:main",
            "dld_asr_inference=espnet_dld.bin.asr_inference:main",
            "dld_export_depth=espnet_dld.bin.export_depth:main",
            "dld_dump_teacher_posteriors=espnet_dld.bin.dump_teacher_posteriors:main",
            "dld_depth_profile=espnet_dld.bin.depth_profile:main",
        ]
    },
)
