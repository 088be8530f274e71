"""Resumable, idempotent generation of wav files from a plan.

A generator first decides everything about every file (a *plan*: for each
output path a canonical ``spec`` string that fully determines its bytes) and
only then synthesizes.  The plan is recorded in a manifest next to the files.
On a re-run a file is reused only if the previous manifest lists the same spec
for it and the file exists; files whose spec changed (other seed, other
options) are deleted before the new manifest is written, so an interrupted
run resumes where it stopped and never mixes outputs of different settings.
Each file itself is written atomically by the ``make`` callback.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Sequence, Union

from tqdm import tqdm

from espnet_dld.data.atomic import write_text_atomic

PathLike = Union[str, os.PathLike]
MANIFEST_NAME = "plan.tsv"


@dataclass(frozen=True)
class PlannedWav:
    """One output file: where it goes and what determines its content."""

    utt_id: str
    path: Path
    spec: str  # canonical (e.g. sorted-key JSON); no tab or newline


@dataclass(frozen=True)
class PlanResult:
    generated: int
    reused: int
    removed: int


def _read_manifest(manifest: Path) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if not manifest.is_file():
        return out
    for lineno, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        rel, sep, spec = line.partition("\t")
        if not sep or not rel:
            raise ValueError(f"{manifest}:{lineno}: malformed manifest line {line!r}")
        out[rel] = spec
    return out


def realize_plan(
    plan: Sequence[PlannedWav],
    folder: PathLike,
    make: Callable[[PlannedWav], None],
    desc: str = "generating",
) -> PlanResult:
    """Make every planned file under ``folder`` that is not already up to date.

    ``make(item)`` must write ``item.path`` atomically.  The manifest is
    ``folder/plan.tsv``; every planned path must lie inside ``folder``.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST_NAME
    old = _read_manifest(manifest)

    new: Dict[str, PlannedWav] = {}
    for item in plan:
        if "\t" in item.spec or "\n" in item.spec:
            raise ValueError(f"{item.utt_id}: spec contains a tab or newline")
        try:
            rel = item.path.resolve().relative_to(folder).as_posix()
        except ValueError:
            raise ValueError(f"{item.path}: planned file is outside {folder}") from None
        if rel in new or rel == MANIFEST_NAME:
            raise ValueError(f"{item.path}: planned twice or clashes with the manifest")
        new[rel] = item

    # Remove what the old plan made but the new one does not want as is, and
    # files we cannot vouch for (present but not in the old manifest).
    removed = 0
    for rel in sorted(set(old) | set(new)):
        if rel in new and old.get(rel) == new[rel].spec:
            continue
        f = folder / rel
        if f.is_file():
            f.unlink()
            removed += 1

    write_text_atomic(
        manifest, "".join(f"{rel}\t{new[rel].spec}\n" for rel in sorted(new))
    )

    todo = [new[rel] for rel in sorted(new) if not (folder / rel).is_file()]
    for item in tqdm(todo, desc=desc, unit="utt", disable=not todo, mininterval=1.0):
        item.path.parent.mkdir(parents=True, exist_ok=True)
        make(item)
        if not item.path.is_file():
            raise RuntimeError(f"{item.path}: generator did not write the file")
    return PlanResult(generated=len(todo), reused=len(new) - len(todo), removed=removed)
