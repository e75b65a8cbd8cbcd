import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))  # fixture writers importable as plain modules


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, with the reason, where torch sees no CUDA device
    (torch is imported only when such a test was collected)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="no CUDA device (benchmarks/gpu_check.sh runs these on a GPU machine)")
        for item in marked:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and immune to oversubscription on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One dataset cache for the whole test session (tests never touch ~/.cache)."""
    d = tmp_path_factory.mktemp("erts-cache")
    os.environ["ERTS_CACHE"] = str(d)
    return d


def tiny_overrides(cache_dir: Path, out_dir: Path, **extra) -> list[str]:
    """A run that takes seconds: 240 short synthetic records, small batches, few epochs."""
    base = {"n_records": 240, "length_s": 2.0, "corrupt_frac": 0.2, "cache_dir": str(cache_dir),
            "out_dir": str(out_dir), "epochs": 4, "batch_size": 32, "warmup_epochs": 1, "gradcam_start": 1,
            "revision_epoch": 3, "quiet": True, "num_threads": 1, "score_batch_size": 64}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (its folder on sys.path, for the scripts that import each other)."""
    import importlib.util

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
