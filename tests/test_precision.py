import warnings

import pytest
import torch

from smollab.train import parallel

CPU = torch.device("cpu")


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
