"""Secret envs by their names (tao_common.envs): masked in `tao show` and on the dashboard's job page."""

from __future__ import annotations

from tao_common.envs import MASK, masked


def test_secret_envs_are_masked_and_the_rest_shown() -> None:
    envs = {
        "NGC_API_KEY": "nvapi-1",
        "HF_TOKEN": "hf_x",
        "DB_PASSWORD": "p",
        "AWS_SECRET_ACCESS_KEY": "s",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert masked(envs) == {
        "NGC_API_KEY": MASK,
        "HF_TOKEN": MASK,
        "DB_PASSWORD": MASK,
        "AWS_SECRET_ACCESS_KEY": MASK,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert masked({"EMPTY_TOKEN": ""}) == {"EMPTY_TOKEN": ""}  # nothing to hide: that it is empty may be why the job failed
