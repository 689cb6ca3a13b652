"""benchmarks/gpu.sh and gpu.py, the GPU figures' script, checked where there is no GPU: it
says so and exits 0, the code it times imports no Ray, and its dry run measures every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
FIGURES = ("extract,", "extract MFU", "train,", "kNN", "representer", "IG,")

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: "
                            "bash benchmarks/gpu.sh measures it")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", **extra}


@no_gpu
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    # no bundle either: the GPU check comes first
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path,
                            env=_env(RELABELER_GPU_BUNDLE=str(tmp_path / "none")))
    assert result.returncode == 0, result.stderr
    assert "no CUDA GPU here" in result.stdout
    assert "RELABELER_GPU_DRYRUN=1" in result.stdout


def test_the_code_it_times_imports_no_ray():
    """The GPU machine has no Ray: every module the figures import must load without it."""
    code = ("import sys\n"
            "import relabeler.attribution, relabeler.data, relabeler.jobs.extract, "
            "relabeler.model, relabeler.training, relabeler.selectors.knn, "
            "relabeler.selectors.representer\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'captum')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=_env(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
@no_gpu
def test_the_dry_run_measures_every_figure(tmp_path):
    bundle, out = tmp_path / "bundle", tmp_path / "figures.json"
    env = _env(PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]))
    script = str(ROOT / "benchmarks" / "gpu.py")
    for args in (["prepare", str(bundle)], ["run", str(bundle), "--dry-run", "--json", str(out)]):
        result = subprocess.run([sys.executable, script, *args], capture_output=True,
                                text=True, timeout=400, cwd=ROOT, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in (bundle / "minilm").iterdir()) == [
        "1_Pooling", "config.json", "config_sentence_transformers.json", "modules.json",
        "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json",
        "tokenizer_config.json", "vocab.txt"]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["failed"] == []
    names = [f["name"] for f in report["figures"]]
    assert len(names) == len(FIGURES)
    assert all(any(n.startswith(prefix) for n in names) for prefix in FIGURES), names
    assert all(f["value"] > 0 and f["target"] > 0 for f in report["figures"])
    assert "96 texts" in names[2]
