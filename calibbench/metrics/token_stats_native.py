"""The statistics of `calibbench.metrics.token_stats` for float32 logits in one C pass per row.

The eager kernels make a max pass, a subtraction pass and, per temperature, an exp pass and four
dot-product passes over each sub-chunk, then a comparison pass for the candidates. The C function
in `token_stats_native.c` reads each row three times while it is in the CPU's cache: its maximum;
then per block of 256 entries x = z - m, and every temperature's s0, s1, s2 and q; then the
candidates, skipping blocks whose maximum is below the threshold. On 2 CPU cores about 0.05 ns per
(position, vocabulary entry, temperature), several times faster than the eager passes.

Conventions, shared with the eager kernels: x = z - m is the same float32 subtraction; the moments
are (4, nT, c) float64, summed in float32 within blocks of 256 entries and in float64 across them
(about 1e-7 relative; the eager passes sum whole rows in float32 through BLAS); a row holding NaN
or an infinity gets NaN in s0, so the caller's check reports it. The exponential is evaluated in
the C file itself (a polynomial, about 1 ulp), so results do not depend on the platform's libm.
Two guards keep the CPU off its slow subnormal path, which real vocabularies hit (entries 40+ nats
below the maximum): beta x is clamped at -87 before exp (exp(-87) is a normal float32) and x at
-87 / beta where it multiplies e, and e^2 is summed only where e >= 1.1e-19. An entry below the
clamp counts as exp(-87) ~ 1.6e-38 at x = -87 / beta instead of its true, smaller e: at most
1.7e-38 * V * (1 + 87 / beta)^2 on any sum, against s0 >= 1. A logit range that overflows z - m
(x = -inf) is clamped the same way. The candidate rule is `candidate_threshold`'s, evaluated in C.

Each row is reduced by one thread in one order, so the results do not depend on the chunking or on
how rows are spread over threads (ctypes releases the GIL: the caller's threads run calls side by
side). The library is compiled with the C compiler on the PATH (`$CC`, else `cc`, `gcc` or
`clang`) for this CPU (-march=native) the first time it is needed on a machine (about 1 s), and
cached in ~/.cache/calibbench/kernels/ under a name that hashes the source, the compiler and the
CPU's instruction sets, so a home directory shared by different nodes never loads a library built
for another CPU. Where no library can be built or loaded, or `CALIBBENCH_FUSED_KERNEL=0` is set,
`native_stats` returns None and callers use the eager passes; the reason is logged once.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

#: Environment variable that switches the native kernel off when set to "0".
SWITCH = "CALIBBENCH_FUSED_KERNEL"
#: The C source, shipped with the package.
SOURCE = Path(__file__).with_suffix(".c")
#: Where built libraries are kept (one per source, compiler and CPU).
CACHE_DIR = Path.home() / ".cache" / "calibbench" / "kernels"
#: Compiler flags (-march=native is tried first). -fno-trapping-math lets the compiler vectorise the
#: clamps without masking (on AVX2 the masked form was six times slower); it changes no value.
FLAGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-std=c99"]
#: Most temperatures one call handles (the C function's fixed-size sums).
MAX_TEMPERATURES = 64
#: Candidate slots per row and bin given to the C function (a row has at most about B candidates);
#: a call whose candidates do not fit (rows of many near-equal maxima) finds them with numpy.
CANDIDATES_PER_BIN = 4

_log = logging.getLogger(__name__)
_LOCK = threading.Lock()

_F32P = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_F64P = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
_I64P = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")


class NativeStats:
    """The C statistics at fixed temperatures and number of bins.

    Calling it on float32 logits z (c, V) (rows may be strided, entries contiguous) returns
    (m (c,) float32 row maxima, moments (4, nT, c) float64 (s0, s1, s2, q), flat) where flat holds
    the candidates' flat indices into c x V in row-major order (int64), or None where they did not
    fit the slots given (then find them with `candidate_threshold`; the rest is complete).
    """

    def __init__(self, lib: ctypes.CDLL, temperatures: np.ndarray, n_bins: int, margin: float):
        self._fn = lib.cb_row_stats
        self._temps = np.ascontiguousarray(temperatures, dtype=np.float64)
        self._betas = 1.0 / self._temps
        self._n_bins = int(n_bins)
        self._margin = float(margin)
        self._slots = (self._n_bins + 1) * CANDIDATES_PER_BIN

    def __call__(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        c, v = z.shape
        if z.dtype != np.float32 or z.strides[1] != 4 or z.strides[0] % 4:
            raise ValueError("NativeStats: expected float32 logits with contiguous rows")
        n_t = len(self._temps)
        m = np.empty(c, np.float32)
        out = np.empty((4, n_t, c))
        cand = np.empty(c * self._slots, np.int64)
        base = z.__array_interface__["data"][0]
        n = self._fn(
            ctypes.c_void_p(base), c, v, z.strides[0] // 4, self._betas, self._temps, n_t,
            self._n_bins, self._margin, m, out, cand, len(cand),
        )  # fmt: skip
        return m, out, (cand[:n].copy() if n >= 0 else None)


def native_stats(temperatures: np.ndarray, n_bins: int, margin: float) -> NativeStats | None:
    """The native statistics for `temperatures` (nT,) and `n_bins`, or None where the library is
    unavailable (see the module docstring) or nT > `MAX_TEMPERATURES`."""
    if os.environ.get(SWITCH, "1") == "0" or len(temperatures) > MAX_TEMPERATURES:
        return None
    lib = _library()
    return None if lib is None else NativeStats(lib, temperatures, n_bins, margin)


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The process's loaded library, built on first use; None (reason logged once) if it cannot
    be had."""
    with _LOCK:
        try:
            lib = ctypes.CDLL(str(_build()))
        except (OSError, subprocess.SubprocessError, RuntimeError) as err:
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
            _log.warning(
                "calibbench: the native token-statistics kernel is unavailable (%s); using the "
                "eager passes (same results to about 1e-6, slower)",
                reason,
            )
            return None
        fn = lib.cb_row_stats
        i64, f64 = ctypes.c_int64, ctypes.c_double
        fn.argtypes = [ctypes.c_void_p, i64, i64, i64, _F64P, _F64P, i64, i64, f64, _F32P, _F64P,
                       _I64P, i64]  # fmt: skip
        fn.restype = i64
        return lib


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("no C compiler on the PATH (set CC, or install gcc or clang)")


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux), else what the platform says of the CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _build() -> Path:
    """The library for this source, compiler and CPU: from the cache, else compiled into it
    (written to a temporary name first, so processes building at once never load half a file)."""
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout
    source = SOURCE.read_bytes()
    flag_sets = (
        [*FLAGS, "-march=native"],
        FLAGS,
    )
    errors = []
    for flags in flag_sets:
        parts = (version, " ".join(flags), _cpu_flags(), platform.machine())
        key = hashlib.sha256(b"\0".join([source, *(p.encode() for p in parts)])).hexdigest()[:16]
        path = CACHE_DIR / f"token_stats-{key}.so"
        if path.exists():
            return path
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=CACHE_DIR)
        os.close(fd)
        cmd = [cc, *flags, "-shared", "-fPIC", "-o", tmp, str(SOURCE), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            os.replace(tmp, path)
            return path
        os.unlink(tmp)
        errors.append(done.stderr.strip() or f"{cc} exited with {done.returncode}")
    raise RuntimeError(f"could not compile {SOURCE.name}: {errors[-1]}")
