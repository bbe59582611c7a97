import warnings
from pathlib import Path

import pytest
import torch

from smollab.train import parallel

CPU = torch.device("cpu")


def cpu_flags() -> set[str]:
    """The kernel's view of this CPU's instruction sets (x86 "flags", Arm "Features"), independent of torch."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo to read the CPU's instruction sets from")
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    pytest.skip("/proc/cpuinfo lists no CPU flags")


def test_this_cpu_is_detected_as_native_bf16_exactly_when_its_flags_say_so():
    # native bf16 multiplies: AVX512-BF16 or AMX-BF16 on x86, the BF16 extension on Arm. AVX512 alone only
    # emulates bf16 (convert to fp32 and back), which is what `auto` must not pick.
    native = bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})
    assert parallel.native_bf16(CPU) is native
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parallel.resolve_precision("auto", CPU) == (torch.bfloat16 if native else torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert parallel.resolve_precision("bf16", CPU) == torch.bfloat16
    assert len(caught) == (0 if native else 1)


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_exactly_where_the_hardware_multiplies_bf16_natively(monkeypatch, native):
    monkeypatch.setattr(parallel, "native_bf16", lambda device: native)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parallel.resolve_precision("auto", CPU) == (torch.bfloat16 if native else torch.float32)
        assert parallel.resolve_precision("fp32", CPU) == torch.float32


def test_explicit_bf16_without_native_support_is_honoured_with_one_warning_naming_the_fix(monkeypatch):
    monkeypatch.setattr(parallel, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match=r"train\.precision.*set train\.precision=auto or fp32"):
        assert parallel.resolve_precision("bf16", CPU) == torch.bfloat16
