"""The out-of-core benchmark's data set: a mixture of Gaussian clusters written to disk in chunks, so
that no process ever holds the whole data set in memory.

The mixture is drawn from ``seed`` and is deliberately untidy: unequal weights (Dirichlet), cluster
widths spread over a factor of ten, every cluster a rotated ellipsoid (so a diagonal model is
misspecified, as on real data), centres that overlap for the wide clusters and separate for the
narrow ones, a few pairs of clusters whose centres are half a radius apart, and an offset from the
origin. Rows are drawn chunk by chunk from a generator seeded by ``(seed, chunk index)``, so the
file is the same whatever the chunk order and whichever formats are written.

Formats (all float32, row-major):

- ``X.npy``: read with ``np.load(path, mmap_mode='r')`` (a ``numpy.memmap``);
- ``X.h5``: dataset ``/X``, chunked by rows (:data:`HDF5_CHUNK_ROWS` rows per HDF5 chunk), no filter;
- ``X.zarr``: a Zarr array chunked by rows (:data:`ZARR_CHUNK_ROWS`, about 32 MiB), uncompressed,
  for ``dask.array.from_zarr`` (workers open it themselves; a pickled memmap would ship its data).

``manifest.json`` records the specification and the formats written, so a data directory is reused
only for the same data.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np

#: Rows generated (and written) per step: 64 MiB of float32 at D=64.
GENERATION_CHUNK_ROWS = 2**18
#: Rows per HDF5 chunk (4 MiB at D=64); a 32 MiB block of the row source reads 8 whole chunks.
HDF5_CHUNK_ROWS = 2**14
#: Rows per Zarr chunk: 32 MiB at D=64, the row source's default block, so one Dask task per block.
ZARR_CHUNK_ROWS = 2**17
FORMATS = ("npy", "hdf5", "zarr")
FILE_NAMES = {"npy": "X.npy", "hdf5": "X.h5", "zarr": "X.zarr"}


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """What the data set is: its size, its number of clusters and the seed of everything."""

    n_samples: int = 8_000_000
    n_features: int = 64
    n_clusters: int = 64
    seed: int = 20261201

    @property
    def nbytes(self) -> int:
        return self.n_samples * self.n_features * 4

    @property
    def n_close_pairs(self) -> int:
        """Clusters moved next to another one (see :func:`mixture_parameters`)."""
        return min(8, self.n_clusters // 2)

    def describe(self) -> str:
        return (
            f"{self.n_samples:,} x {self.n_features} float32 ({self.nbytes / 2**30:.2f} GiB): a mixture of "
            f"{self.n_clusters} Gaussian clusters drawn from seed {self.seed} (Dirichlet(2) weights, widths "
            "log-uniform over a factor of 10, each a randomly rotated ellipsoid with axis ratios "
            f"log-normal(0, 0.5), centres N(3, 1.5^2) per coordinate, {self.n_close_pairs} of them moved to "
            "half their own radius (0.5 width sqrt(D)) from another cluster's centre)"
        )


@dataclasses.dataclass(frozen=True)
class MixtureParameters:
    weights: np.ndarray  # (K,)
    centres: np.ndarray  # (K, D) float32
    transforms: np.ndarray  # (K, D, D) float32: row z -> z @ transforms[k] + centres[k]


def mixture_parameters(spec: MixtureSpec) -> MixtureParameters:
    """The clusters of ``spec`` (drawn from its seed alone)."""
    rng = np.random.default_rng([spec.seed, 0])
    K, D = spec.n_clusters, spec.n_features
    weights = rng.dirichlet(np.full(K, 2.0))
    widths = np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=K))
    centres = 3.0 + 1.5 * rng.standard_normal((K, D))
    # Near-duplicates: a few clusters sit half their own radius (0.5 width sqrt(D)) from another
    # cluster's centre, so their posteriors overlap strongly whatever the fit does.
    n_pairs = spec.n_close_pairs
    for k, partner in zip(
        range(n_pairs), rng.choice(np.arange(n_pairs, K), size=n_pairs, replace=False), strict=True
    ):
        direction = rng.standard_normal(D)
        centres[k] = centres[partner] + widths[k] * direction / np.linalg.norm(direction) * np.sqrt(D) * 0.5
    transforms = np.empty((K, D, D))
    for k in range(K):
        rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
        axes = np.exp(0.5 * rng.standard_normal(D))
        transforms[k] = widths[k] * (axes[:, None] * rotation.T)
    return MixtureParameters(weights, centres.astype(np.float32), transforms.astype(np.float32))


def generate_chunk(spec: MixtureSpec, parameters: MixtureParameters, index: int) -> np.ndarray:
    """Rows ``index * GENERATION_CHUNK_ROWS`` onwards (at most that many), float32."""
    start = index * GENERATION_CHUNK_ROWS
    n = min(GENERATION_CHUNK_ROWS, spec.n_samples - start)
    rng = np.random.default_rng([spec.seed, 1, index])
    labels = rng.choice(spec.n_clusters, size=n, p=parameters.weights)
    z = rng.standard_normal((n, spec.n_features), dtype=np.float32)
    rows = np.empty_like(z)
    for k in range(spec.n_clusters):
        members = labels == k
        rows[members] = z[members] @ parameters.transforms[k] + parameters.centres[k]
    return rows


def _chunks(spec):
    parameters = mixture_parameters(spec)
    for index in range(-(-spec.n_samples // GENERATION_CHUNK_ROWS)):
        yield index * GENERATION_CHUNK_ROWS, generate_chunk(spec, parameters, index)


def write_data(directory, spec: MixtureSpec, formats=FORMATS, log=print) -> dict:
    """Write the formats named (a subset of :data:`FORMATS`) under ``directory``, reusing those a
    previous call wrote for the same ``spec``. Returns ``{format: path}``."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("spec") != dataclasses.asdict(spec):
        manifest = {"spec": dataclasses.asdict(spec), "formats": []}
    missing = [f for f in formats if f not in manifest["formats"]]
    if missing:
        began = time.perf_counter()
        writers = [_WRITERS[f](directory / FILE_NAMES[f], spec) for f in missing]
        for start, rows in _chunks(spec):
            for writer in writers:
                writer.write(start, rows)
        for writer in writers:
            writer.close()
        manifest["formats"] = sorted(set(manifest["formats"]) | set(missing))
        manifest_path.write_text(json.dumps(manifest, indent=1))
        seconds = time.perf_counter() - began
        log(f"wrote {', '.join(missing)} ({spec.nbytes / 2**30:.2f} GiB each) in {seconds:.0f} s")
    return {f: str(directory / FILE_NAMES[f]) for f in formats}


class _NpyWriter:
    """An .npy file written as a header and then raw rows in order (no memory map while writing)."""

    def __init__(self, path, spec):
        self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (spec.n_samples, spec.n_features)}  # fmt: skip
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, start, rows):
        self.file.write(np.ascontiguousarray(rows).tobytes())

    def close(self):
        self.file.close()


class _Hdf5Writer:
    def __init__(self, path, spec):
        import h5py

        self.file = h5py.File(path, "w")
        self.dataset = self.file.create_dataset(
            "X", shape=(spec.n_samples, spec.n_features), dtype="float32",
            chunks=(min(HDF5_CHUNK_ROWS, spec.n_samples), spec.n_features),
        )  # fmt: skip

    def write(self, start, rows):
        self.dataset[start : start + rows.shape[0]] = rows

    def close(self):
        self.file.close()


class _ZarrWriter:
    def __init__(self, path, spec):
        import zarr

        self.array = zarr.create_array(
            store=str(path), shape=(spec.n_samples, spec.n_features), dtype="float32",
            chunks=(min(ZARR_CHUNK_ROWS, spec.n_samples), spec.n_features), compressors=None,
            overwrite=True,
        )  # fmt: skip

    def write(self, start, rows):
        self.array[start : start + rows.shape[0]] = rows

    def close(self):
        pass


_WRITERS = {"npy": _NpyWriter, "hdf5": _Hdf5Writer, "zarr": _ZarrWriter}


def open_source(kind: str, path):
    """The data as a fit would be handed it: ``memmap`` (``np.load(mmap_mode='r')``), ``hdf5`` (the
    h5py dataset; its file stays open), ``memory`` (an in-memory copy of the .npy) or ``zarr``."""
    if kind == "memmap":
        return np.load(path, mmap_mode="r")
    if kind == "memory":
        return np.load(path)
    if kind == "hdf5":
        import h5py

        return h5py.File(path, "r")["X"]
    if kind == "zarr":
        import zarr

        return zarr.open_array(str(path), mode="r")
    raise ValueError(f"unknown source kind {kind!r}")
