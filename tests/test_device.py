"""frad.device: device names, and `auto` spreading processes over several GPUs (selection logic without a GPU:
the GPU count, free memory and lock folder are injected)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from frad.device import GpuLocks, check_device, choose_gpu
from frad.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def no_memory_query(i: int) -> int:
    raise AssertionError("free memory must only be queried when every GPU is busy")


def test_device_names():
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        check_device(ok)
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "mps"):
        with pytest.raises(ConfigError, match="train.device must be"):
            check_device(bad)


def test_first_unlocked_gpu_wins_else_the_most_free_memory():
    assert choose_gpu(4, lambda i: i >= 2, no_memory_query) == (2, True)
    free = {0: 5, 1: 9, 2: 9, 3: 1}
    assert choose_gpu(4, lambda i: False, free.__getitem__) == (1, False)  # tie: the lower index
    with pytest.raises(ValueError):
        choose_gpu(0, lambda i: True, no_memory_query)


def test_two_lock_holders_get_different_gpus_and_a_released_gpu_is_free_again(tmp_path):
    keys = ["GPU-aaa", "GPU-bbb"]
    a, b, c = GpuLocks(tmp_path, keys), GpuLocks(tmp_path, keys), GpuLocks(tmp_path, keys)
    assert choose_gpu(2, a.try_lock, no_memory_query) == (0, True)
    assert choose_gpu(2, a.try_lock, no_memory_query) == (0, True)  # the holder keeps its GPU
    assert choose_gpu(2, b.try_lock, no_memory_query) == (1, True)
    assert choose_gpu(2, c.try_lock, {0: 3, 1: 7}.__getitem__) == (1, False)  # all busy: most free memory
    a.release()
    assert choose_gpu(2, c.try_lock, no_memory_query) == (0, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-GPU-aaa.lock", "gpu-GPU-bbb.lock"]


CHILD = """
import sys
from frad.device import GpuLocks, choose_gpu
locks = GpuLocks(sys.argv[1], ["GPU-aaa", "GPU-bbb", "GPU-ccc"])
print(choose_gpu(3, locks.try_lock, lambda i: 0)[0], flush=True)
sys.stdin.read()  # hold the lock until the parent closes stdin
"""


def test_two_processes_get_different_gpus(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert first.stdout.readline().strip() == "0"
        second = subprocess.run(
            [sys.executable, "-c", CHILD, str(tmp_path)], input="", capture_output=True, text=True, env=env, timeout=60
        )
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == "1"
    finally:
        first.communicate("", timeout=60)
    third = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], input="", capture_output=True, text=True, env=env, timeout=60
    )
    assert third.stdout.strip() == "0"  # the first process ended: the kernel dropped its lock


def test_import_is_torch_free():
    code = "import sys, frad.device; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr


def test_auto_takes_a_free_gpu_once_per_process(tmp_path, monkeypatch):
    """The torch wrapper, with a fake 3-GPU torch.cuda: GPU 0 is held by another process (a lock holder here)."""
    import types

    import torch

    from frad import device

    props = {i: types.SimpleNamespace(uuid=f"GPU-{i}") for i in range(3)}
    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_properties", props.__getitem__)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "mem_get_info", no_memory_query)
    monkeypatch.setattr(device, "_auto", None)
    monkeypatch.setattr(device, "_locks", None)
    monkeypatch.setenv(device.LOCK_DIR_ENV, str(tmp_path))
    other = GpuLocks(tmp_path, ["GPU-0", "GPU-1", "GPU-2"])
    assert other.try_lock(0)
    try:
        assert device.resolve_device("auto") == torch.device("cuda:1")
        assert device.resolve_device("auto") == torch.device("cuda:1")  # same answer, no second lock
        assert chosen == [1] and list(device._locks.held) == [1]
        assert device.resolve_device("cuda:2") == torch.device("cuda:2")  # explicit devices keep their meaning
    finally:
        device._locks.release()
        other.release()
