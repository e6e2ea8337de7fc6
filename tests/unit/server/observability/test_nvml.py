"""NVML behind tao_server.observability.nvml: which device each inventory entry names, and what a device reads.

The stand-in for pynvml (tests/fake_nvml.py) is the only thing not real here.
"""

from __future__ import annotations

import logging
import sys

import pytest

from tao_server.observability.nvml import MIB, Unreadable, open_nvml
from tests.fake_nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeGpu, FakeNvml, two_gpus


def test_indices_are_nvmls_and_each_device_is_known_by_its_uuid_and_bus_id(caplog: pytest.LogCaptureFixture) -> None:
    library = two_gpus()
    nvml = open_nvml(library)
    assert nvml is not None
    with caplog.at_level(logging.INFO, logger="tao_server.observability.nvml"):
        devices = nvml.devices(["1", "0"])
    assert [(d.index, d.uuid, d.bus_id) for d in devices] == [
        ("1", library.gpus[1].uuid, "00000000:3B:00.0"),
        ("0", library.gpus[0].uuid, "00000000:1B:00.0"),
    ]
    # The mapping is said once per device, with everything needed to check it against nvidia-smi -L.
    assert f"GPU 1 is NVIDIA H100 80GB HBM3, {library.gpus[1].uuid} at PCI 00000000:3B:00.0" in caplog.text


def test_an_inventory_of_uuids_or_bus_ids_names_those_devices_whatever_their_index() -> None:
    library = two_gpus()
    nvml = open_nvml(library)
    assert nvml is not None
    by_uuid, by_bus = nvml.devices([library.gpus[1].uuid, "00000000:1b:00.0"])
    assert by_uuid.handle is library.gpus[1] and by_uuid.index == library.gpus[1].uuid
    assert by_bus.handle is library.gpus[0]


def test_in_a_container_given_some_gpus_indices_are_not_the_hosts_so_only_uuids_are_sampled(caplog: pytest.LogCaptureFixture) -> None:
    library = two_gpus()  # what NVML shows in a container given the host's GPUs 2 and 3: numbered 0 and 1
    nvml = open_nvml(library, visible_devices="2,3")
    assert nvml is not None
    with caplog.at_level(logging.INFO, logger="tao_server.observability.nvml"):
        devices = nvml.devices(["2", library.gpus[1].uuid])
    assert [device.handle for device in devices] == [library.gpus[1]]
    assert "GPU 2: its use is not sampled: this process sees only some of the host's GPUs (NVIDIA_VISIBLE_DEVICES=2,3)" in caplog.text
    assert "name the devices by UUID in --gpus" in caplog.text


@pytest.mark.parametrize("visible", [None, "", "all"])
def test_a_process_that_sees_every_gpu_resolves_indices(visible: str | None) -> None:
    nvml = open_nvml(two_gpus(), visible_devices=visible)
    assert nvml is not None
    assert [device.index for device in nvml.devices(["0", "1"])] == ["0", "1"]


def test_an_entry_nvml_does_not_know_is_left_out_in_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    nvml = open_nvml(two_gpus())
    assert nvml is not None
    with caplog.at_level(logging.INFO, logger="tao_server.observability.nvml"):
        devices = nvml.devices(["0", "7", "GPU-nope", "weird"])
    assert [device.index for device in devices] == ["0"]
    assert "GPU 7: its use is not sampled: NVML does not know it (Not Found)" in caplog.text
    assert "GPU GPU-nope: its use is not sampled: NVML does not know it (Not Found)" in caplog.text
    assert "GPU weird: its use is not sampled: 'weird' is neither an NVML index, a UUID nor a PCI bus id" in caplog.text
    assert all(record.levelno == logging.INFO for record in caplog.records)


def test_a_reading_gives_utilisation_and_the_memory_processes_use_without_the_drivers_reserve() -> None:
    library = FakeNvml([FakeGpu("GPU-a", "00000000:1B:00.0", utilization=87, used_mib=12000, reserved_mib=512, total_mib=81559)])
    nvml = open_nvml(library)
    assert nvml is not None
    (device,) = nvml.devices(["0"])
    reading = nvml.read(device)
    assert (reading.utilization, reading.memory_used, reading.memory_total) == (87.0, 12000 * MIB, 81559 * MIB)


def test_a_driver_without_memory_info_v2_gives_version_1s_used_memory() -> None:
    library = FakeNvml([FakeGpu("GPU-a", "00000000:1B:00.0", used_mib=12000, reserved_mib=512)], memory_v2=False)
    nvml = open_nvml(library)
    assert nvml is not None
    (device,) = nvml.devices(["0"])
    assert nvml.read(device).memory_used == 12512 * MIB


def test_a_device_that_fell_off_the_bus_is_unreadable_not_a_crash() -> None:
    library = two_gpus()
    nvml = open_nvml(library)
    assert nvml is not None
    first, second = nvml.devices(["0", "1"])
    library.gpus[0].lost = True
    with pytest.raises(Unreadable, match="GPU is lost"):
        nvml.read(first)
    assert nvml.read(second).utilization == 0.0


def test_no_driver_means_no_nvml_said_in_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tao_server.observability.nvml"):
        assert open_nvml(FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)) is None
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "GPU use is not sampled: NVML cannot start here (Driver Not Loaded)")
    ]


def test_no_nvidia_ml_py_means_no_nvml_said_in_one_info_line(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as if nvidia-ml-py were not installed: `import pynvml` fails
    with caplog.at_level(logging.INFO, logger="tao_server.observability.nvml"):
        assert open_nvml() is None
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "GPU use is not sampled: nvidia-ml-py is not installed (pip install 'tao-launcher[gpu]')")
    ]


def test_close_shuts_nvml_down() -> None:
    library = two_gpus()
    nvml = open_nvml(library)
    assert nvml is not None and library.initialised == 1
    nvml.close()
    assert library.initialised == 0
