"""The shipped pre-trained checkpoint of the attention testbed: save, load, rebuild, check.

The checkpoint is the :class:`~stabtheory.attention.encoder.PretrainModel` parameters of
:func:`~stabtheory.attention.pretraining.pretrain` at the default
:class:`~stabtheory.attention.pretraining.PretrainConfig` (seed 0), as flax msgpack
(``flax.serialization.msgpack_serialize`` of the nested dict of float32 arrays), shipped at
``stabtheory/attention/data/encoder.msgpack``. The command::

    python -m stabtheory.attention.checkpoint --rebuild [--check] [--out PATH]

pre-trains from the seed again (about 2 minutes on a 2-core CPU) and writes the file (by
default over the shipped one); with ``--check`` it writes nothing and compares the rebuilt bytes
with the shipped file (SHA-256), exiting 1 on a mismatch. The bits are those of one jax version
on one platform (CPU float32 here); another XLA build may round differently.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx, serialization

from stabtheory.attention.encoder import Classifier, PretrainModel
from stabtheory.attention.pretraining import PretrainConfig, encoder_config, pretrain

__all__ = [
    "CHECKPOINT",
    "DEFAULT",
    "DEFAULT_CORPUS",
    "load_classifier",
    "load_pretrained",
    "main",
    "rebuild_bytes",
    "sha256",
    "to_bytes",
]

#: The shipped checkpoint.
CHECKPOINT = Path(__file__).resolve().parent / "data" / "encoder.msgpack"
#: The pre-training run that produced it.
DEFAULT = PretrainConfig()
#: Its corpus (the generative model every task draws from).
DEFAULT_CORPUS = DEFAULT.corpus


def _str_keys(tree):
    if isinstance(tree, dict):
        return {str(k): _str_keys(v) for k, v in tree.items()}
    return np.asarray(tree, np.float32)


def _typed_keys(tree, like):
    if isinstance(like, dict):
        return {k: _typed_keys(tree[str(k)], v) for k, v in like.items()}
    return tree


def to_bytes(model: PretrainModel) -> bytes:
    """The msgpack bytes of a model's parameters (nested dict, string keys, float32)."""
    return serialization.msgpack_serialize(_str_keys(nnx.to_pure_dict(nnx.state(model, nnx.Param))))


def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def load_pretrained(path: Path | str = CHECKPOINT, cfg: PretrainConfig = DEFAULT) -> PretrainModel:
    """The :class:`~stabtheory.attention.encoder.PretrainModel` stored at ``path``."""
    model = PretrainModel(encoder_config(cfg), rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    raw = serialization.msgpack_restore(Path(path).read_bytes())
    nnx.replace_by_pure_dict(state, _typed_keys(raw, nnx.to_pure_dict(state)))
    nnx.update(model, state)
    return model


@functools.lru_cache(maxsize=2)
def _cached(path: str) -> PretrainModel:
    return load_pretrained(path)


def load_classifier(path: Path | str = CHECKPOINT, *, head_seed: int = 0) -> Classifier:
    """The shipped encoder and pooler topped with a fresh two-logit head (seeded)."""
    pre = _cached(str(path))
    return Classifier(pre.encoder, pre.pooler, rngs=nnx.Rngs(head_seed))


def rebuild_bytes(cfg: PretrainConfig = DEFAULT) -> tuple[bytes, dict]:
    """Pre-train from the seed again: ``(checkpoint bytes, metrics)``."""
    model, metrics = pretrain(cfg)
    return to_bytes(model), metrics


def main(argv: list[str] | None = None) -> int:
    """``python -m stabtheory.attention.checkpoint --rebuild [--check] [--out PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="pre-train from the seed")
    parser.add_argument("--check", action="store_true", help="compare with the shipped file")
    parser.add_argument("--out", type=Path, default=CHECKPOINT, help="where to write")
    args = parser.parse_args(argv)
    if not args.rebuild:
        data = CHECKPOINT.read_bytes()
        print(f"{CHECKPOINT}: {len(data)} bytes, sha256 {sha256(data)}")
        return 0
    start = time.perf_counter()
    data, metrics = rebuild_bytes()
    took = time.perf_counter() - start
    print(
        f"rebuilt in {took:.1f} s ({jax.default_backend()}): {len(data)} bytes, "
        f"sha256 {sha256(data)}; {metrics}"
    )
    if args.check:
        shipped = CHECKPOINT.read_bytes()
        same = shipped == data
        print(f"shipped sha256 {sha256(shipped)}: {'identical' if same else 'MISMATCH'}")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
