"""The process-level speed settings: one BLAS thread inside the block, glibc's trim threshold
raised inside it and set back after, and nothing attempted on another C library."""
import pytest
from threadpoolctl import threadpool_info

from minipg.core import speed


def test_inside_the_block_blas_has_one_thread_and_freed_memory_is_kept(monkeypatch):
    calls = []
    record = lambda param, value: calls.append((param, value))     # noqa: E731
    monkeypatch.setattr(speed, "_mallopt", lambda: record)
    with speed.training_speed():
        assert all(pool["num_threads"] == 1 for pool in threadpool_info()
                   if pool["user_api"] == "blas")
        assert calls == [(-1, 64 * 1024 * 1024)]
    assert calls[-1] == (-1, 128 * 1024)                 # glibc's default value again


def test_the_threshold_is_set_back_even_when_the_block_raises(monkeypatch):
    calls = []
    monkeypatch.setattr(speed, "_mallopt", lambda: lambda param, value: calls.append(value))
    with pytest.raises(KeyError):
        with speed.training_speed():
            raise KeyError("stop")
    assert calls == [64 * 1024 * 1024, 128 * 1024]


def test_without_glibc_nothing_is_called(monkeypatch):
    monkeypatch.setattr(speed.platform, "libc_ver", lambda: ("", ""))
    assert speed._mallopt() is None
    with speed.training_speed():
        pass


def test_nested_blocks_keep_the_outer_setting_until_the_outer_block_ends(monkeypatch):
    calls = []
    monkeypatch.setattr(speed, "_mallopt", lambda: lambda param, value: calls.append(value))
    with speed.training_speed():
        with speed.training_speed():              # e.g. an evaluation inside a callback
            pass
        assert calls == [64 * 1024 * 1024]        # not set back by the inner block
    assert calls == [64 * 1024 * 1024, 128 * 1024]
