"""Write a dataset directory all at once: build it in a temporary sibling, then rename into place.

A crash, an error or Ctrl-C leaves nothing half-written at the target path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False, what: str = "dataset") -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; on success it replaces ``target`` atomically.

    Args:
        target: the final directory. It must not exist unless ``overwrite`` is True.
        overwrite: replace an existing ``target`` (only after the new one is complete).
        what: noun used in error messages.

    Raises:
        FileExistsError: ``target`` exists and ``overwrite`` is False.
    """
    target = Path(target).expanduser().absolute()
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{what} root {target} already exists; choose another root or delete it "
            "(or pass --overwrite to replace it once the new one is complete)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        if not tmp.is_dir():
            raise RuntimeError(f"internal error: nothing was written to {tmp}")
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
