"""The task manifest: formats 1.0, 2.0 and 3.0, task resolution, and errors (tao_server.manifest)."""

from __future__ import annotations

import json

import pytest

from tao_server.errors import ManifestError, UnknownTask
from tao_server.images.manifest import BUNDLED_SOURCE, TaskImage, load, parse

SOURCE = "/etc/tao/config.json"
DIGEST = "sha256:" + "0123456789abcdef" * 4

V1 = {
    "format_version": 1.0,
    "toolkit_version": "3.21.08",
    "dockers": {
        "nvidia/tao/tao-toolkit-tf": {"docker_registry": "nvcr.io", "docker_tag": "v3.21.08-py3", "tasks": ["detectnet_v2", "ssd"]},
    },
}
V2 = {
    "format_version": 2.0,
    "dockers": {
        "nvidia/tao/tao-toolkit-tf": {
            "v3.21.11-py3": {
                "docker_registry": "nvcr.io",
                "docker_digest": DIGEST,
                "tasks": ["detectnet_v2", "ssd"],
                "subtasks": {"ssd": ["train", "evaluate"]},
            },
        },
        "local/tools": {"latest": {"docker_registry": "", "tasks": ["converter"]}},
    },
}
V3 = {
    "format_version": "3.0",
    "task_group": {
        "model": {
            "dockers": {"nvidia/tao/tao-toolkit": {"5.0.0-pyt": {"docker_registry": "nvcr.io", "tasks": ["dino", "classification_pyt"]}}}
        },
        "dataset": {
            "dockers": {"nvidia/tao/tao-toolkit": {"5.0.0-data": {"docker_registry": "nvcr.io", "tasks": ["augmentation", "dino"]}}}
        },
    },
}

BUNDLED_TASKS = [
    "augment",
    "classification",
    "detectnet_v2",
    "dssd",
    "emotionnet",
    "faster_rcnn",
    "fpenet",
    "gazenet",
    "gesturenet",
    "heartratenet",
    "retinanet",
    "speech_to_text",
    "ssd",
    "text_classification",
    "converter",
    "token_classification",
    "unet",
    "yolo_v3",
    "yolo_v4",
    "yolo_v4_tiny",
]


def parse_dict(data: dict):
    return parse(json.dumps(data), SOURCE)


def manifest_error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        parse(text, SOURCE)
    return info.value


# --- formats -------------------------------------------------------------------------------------


def test_format_1_0():
    manifest = parse_dict(V1)
    assert manifest.format_version == "1.0"
    assert manifest.toolkit_version == "3.21.08"
    assert manifest.groups == []
    spec = manifest.resolve(None, "ssd")
    assert (spec.group, spec.name) == (None, "ssd")
    assert spec.image == TaskImage("nvcr.io", "nvidia/tao/tao-toolkit-tf", "v3.21.08-py3")
    assert spec.image.reference == "nvcr.io/nvidia/tao/tao-toolkit-tf:v3.21.08-py3"


def test_format_2_0_with_digest_and_subtasks():
    manifest = parse_dict(V2)
    assert manifest.format_version == "2.0"
    ssd = manifest.resolve(None, "ssd")
    assert ssd.image.reference == f"nvcr.io/nvidia/tao/tao-toolkit-tf:v3.21.11-py3@{DIGEST}"
    assert ssd.subtasks == ("train", "evaluate")
    assert manifest.resolve(None, "detectnet_v2").subtasks == ()


def test_empty_registry_gives_a_bare_reference():
    assert parse_dict(V2).resolve(None, "converter").image.reference == "local/tools:latest"


@pytest.mark.parametrize("version", [2.0, "2.0", 2, "2"])
def test_format_version_as_number_or_string(version):
    assert parse_dict({**V2, "format_version": version}).format_version == "2.0"


def test_format_3_0_groups_in_manifest_order():
    manifest = parse_dict(V3)
    assert manifest.format_version == "3.0"
    assert manifest.groups == ["model", "dataset"]
    assert manifest.resolve("dataset", "augmentation").image.reference == "nvcr.io/nvidia/tao/tao-toolkit:5.0.0-data"


def test_resolve_without_group_picks_the_first_group_with_the_task():
    spec = parse_dict(V3).resolve(None, "dino")
    assert spec.group == "model"
    assert spec.image.tag == "5.0.0-pyt"


def test_resolve_with_group_picks_that_group():
    spec = parse_dict(V3).resolve("dataset", "dino")
    assert spec.group == "dataset"
    assert spec.image.tag == "5.0.0-data"


def test_task_listed_twice_keeps_the_first_image():
    data = {
        "format_version": 2.0,
        "dockers": {
            "a": {"1": {"docker_registry": "r", "tasks": ["ssd"]}},
            "b": {"2": {"docker_registry": "r", "tasks": ["ssd"]}},
        },
    }
    assert parse_dict(data).resolve(None, "ssd").image.reference == "r/a:1"


def test_images_are_unique_and_sorted():
    references = [image.reference for image in parse_dict(V2).images()]
    assert references == ["local/tools:latest", f"nvcr.io/nvidia/tao/tao-toolkit-tf:v3.21.11-py3@{DIGEST}"]


# --- resolve errors ------------------------------------------------------------------------------


def test_unknown_task_lists_known_tasks():
    with pytest.raises(UnknownTask) as info:
        parse_dict(V2).resolve(None, "mask_rcnn")
    assert info.value.field == "task"
    assert "'mask_rcnn'" in info.value.message
    assert "converter, detectnet_v2, ssd" in info.value.message


def test_unknown_group_lists_groups():
    with pytest.raises(UnknownTask) as info:
        parse_dict(V3).resolve("deploy", "dino")
    assert info.value.field == "group"
    assert "'deploy'" in info.value.message
    assert "model, dataset" in info.value.message


def test_group_without_the_task_lists_its_tasks():
    with pytest.raises(UnknownTask) as info:
        parse_dict(V3).resolve("dataset", "classification_pyt")
    assert info.value.field == "task"
    assert "augmentation, dino" in info.value.message


def test_group_on_a_manifest_without_groups():
    with pytest.raises(UnknownTask) as info:
        parse_dict(V2).resolve("model", "ssd")
    assert "groups: none" in info.value.message


# --- parse errors --------------------------------------------------------------------------------


def test_invalid_json_names_line_and_column():
    error = manifest_error('{\n  "format_version": 2.0\n  "dockers": {}\n}')
    assert error.message.startswith(f"{SOURCE}: line 3, column 3: invalid JSON")
    assert error.source == SOURCE


# (manifest, the key path the error names, a fragment of the message)
PARSE_ERRORS = [
    pytest.param([], "the top level", "expected an object", id="top-level-not-object"),
    pytest.param({"dockers": {}}, "format_version", "missing", id="missing-format-version"),
    pytest.param({**V2, "format_version": 4.0}, "format_version", "4.0 is not supported", id="format-4"),
    pytest.param({**V2, "format_version": "latest"}, "format_version", "'latest' is not supported", id="format-text"),
    pytest.param({"format_version": 2.0, "dockers": []}, "dockers", "expected an object", id="dockers-not-object"),
    pytest.param({"format_version": 2.0}, "dockers", "missing", id="dockers-missing"),
    pytest.param({"format_version": 2.0, "dockers": {"img": ["t"]}}, "dockers.img", "expected an object", id="tags-not-object"),
    pytest.param(
        {"format_version": 2.0, "dockers": {"img": {"t": {"docker_registry": "r", "tasks": "ssd"}}}},
        "dockers.img.t.tasks",
        "expected a list of task names, got 'ssd'",
        id="tasks-not-list",
    ),
    pytest.param(
        {"format_version": 2.0, "dockers": {"img": {"t": {"docker_registry": "r", "tasks": ["ssd", ""]}}}},
        "dockers.img.t.tasks",
        "expected a list of task names",
        id="empty-task-name",
    ),
    pytest.param(
        {"format_version": 2.0, "dockers": {"img": {"t": {"tasks": ["ssd"]}}}},
        "dockers.img.t.docker_registry",
        "expected a string, got None",
        id="registry-missing",
    ),
    pytest.param(
        {"format_version": 2.0, "dockers": {"img": {"t": {"docker_registry": "r", "tasks": ["ssd"], "subtasks": {"ssd": "train"}}}}},
        "dockers.img.t.subtasks.ssd",
        "expected a list of names",
        id="subtasks-not-list",
    ),
    pytest.param(
        {"format_version": 1.0, "dockers": {"img": {"docker_registry": "r", "tasks": ["ssd"]}}},
        "dockers.img.docker_tag",
        "expected a string",
        id="v1-tag-missing",
    ),
    pytest.param({"format_version": 3.0, "dockers": {}}, "task_group", "missing", id="v3-task-group-missing"),
    pytest.param(
        {"format_version": 3.0, "task_group": {"model": {}}}, "task_group.model.dockers", "missing", id="v3-group-dockers-missing"
    ),
]


@pytest.mark.parametrize(("data", "field", "fragment"), PARSE_ERRORS)
def test_parse_error_names_source_and_key(data, field, fragment):
    error = manifest_error(json.dumps(data))
    assert error.field == field
    assert error.source == SOURCE
    assert error.message.startswith(f"{SOURCE}: {field}:")
    assert fragment in error.message


def _one_image(name: str = "nvidia/tao", tag: str = "5.0", registry: str = "nvcr.io", **entry: str) -> dict[str, object]:
    return {"format_version": 2.0, "dockers": {name: {tag: {"docker_registry": registry, "tasks": ["ssd"], **entry}}}}


# (manifest, the key the error names, the value it quotes, a fragment of the rule it gives)
BAD_REFERENCES = [
    pytest.param(_one_image(name="NVIDIA/tao"), "dockers.NVIDIA/tao", "'NVIDIA/tao'", "lowercase", id="uppercase-repository"),
    pytest.param(_one_image(name="nvidia//tao"), "dockers.nvidia//tao", "'nvidia//tao'", "joined by '/'", id="empty-component"),
    pytest.param(_one_image(name="nvidia/tao-"), "dockers.nvidia/tao-", "'nvidia/tao-'", "separated by", id="trailing-separator"),
    pytest.param(_one_image(name="tao toolkit"), "dockers.tao toolkit", "'tao toolkit'", "lowercase", id="space"),
    pytest.param(_one_image(tag="-rc1"), "dockers.nvidia/tao.-rc1", "'-rc1'", "does not start with", id="tag-starts-with-dash"),
    pytest.param(_one_image(tag="5.0:x"), "dockers.nvidia/tao.5.0:x", "'5.0:x'", "a tag is", id="tag-with-colon"),
    pytest.param(_one_image(tag="t" * 129), "dockers.nvidia/tao." + "t" * 129, "'" + "t" * 129 + "'", "up to 128", id="tag-too-long"),
    pytest.param(_one_image(registry="nvcr io"), "dockers.nvidia/tao.5.0.docker_registry", "'nvcr io'", "host name", id="registry-space"),
    pytest.param(
        _one_image(registry="https://nvcr.io"), "dockers.nvidia/tao.5.0.docker_registry", "'https://nvcr.io'", ":port", id="scheme"
    ),
    pytest.param(
        _one_image(docker_digest="sha256:abc123"),
        "dockers.nvidia/tao.5.0.docker_digest",
        "'sha256:abc123'",
        "ALGORITHM:HEX",
        id="digest-short",
    ),
    pytest.param(
        _one_image(docker_digest="sha256:" + "a" * 40),
        "dockers.nvidia/tao.5.0.docker_digest",
        "'sha256:",
        "64 hex digits, not 40",
        id="sha256-40",
    ),
    pytest.param(_one_image(name="a/" * 130 + "b"), "dockers." + "a/" * 130 + "b", "'", "at most 255", id="name-too-long"),
]


@pytest.mark.parametrize(("data", "field", "value", "rule"), BAD_REFERENCES)
def test_an_image_reference_the_engine_cannot_parse_is_refused_naming_key_and_value(data, field, value, rule):
    error = manifest_error(json.dumps(data))
    assert (error.field, error.source) == (field, SOURCE)
    assert error.message.startswith(f"{SOURCE}: {field}: {value}")
    assert "is not an image reference the engine can parse" in error.message and rule in error.message


@pytest.mark.parametrize(
    ("registry", "name", "tag"),
    [
        ("localhost:5000", "tao/toolkit", "5.0.0-pyt"),
        ("127.0.0.1:1", "tao-test/absent", "never"),
        ("[::1]:5000", "a__b/c.d/e-f--g", "V_1.0"),
        ("nvcr.io/nvidia", "tao/tao-toolkit", "5.0"),  # a registry with a path of its own
        ("", "nvcr.io/nvidia/tao", "latest"),  # the registry in the name, as Docker reads it
        ("", "ubuntu", "22.04"),
    ],
)
def test_references_the_engine_parses_are_accepted(registry, name, tag):
    assert parse_dict(_one_image(name=name, tag=tag, registry=registry)).resolve(None, "ssd").image.tag == tag


@pytest.mark.parametrize(
    "data",
    [{"format_version": 2.0, "dockers": {}}, {"format_version": 3.0, "task_group": {"model": {"dockers": {}}}}],
)
def test_manifest_without_tasks(data):
    error = manifest_error(json.dumps(data))
    assert error.message == f"{SOURCE}: the manifest lists no tasks"


@pytest.mark.parametrize(("version", "body"), [(True, V1), (1.96, V2), ("2.04", V2)], ids=["true-as-1.0", "1.96-as-2.0", "2.04-as-2.0"])
def test_format_version_must_match_exactly(version, body):
    error = manifest_error(json.dumps({**body, "format_version": version}))
    assert error.field == "format_version"


# --- loading -------------------------------------------------------------------------------------


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(V1))
    manifest = load(path)
    assert manifest.source == str(path)
    assert manifest.resolve(None, "detectnet_v2").image.tag == "v3.21.08-py3"


def test_load_missing_file_names_it(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(ManifestError) as info:
        load(path)
    assert info.value.message.startswith(f"{path}: cannot read the task manifest")


def test_parse_error_in_a_loaded_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{")
    with pytest.raises(ManifestError) as info:
        load(path)
    assert info.value.message.startswith(f"{path}: line 1, column 2:")


def test_bundled_default_manifest_loads():
    manifest = load(None)
    assert manifest.source == BUNDLED_SOURCE
    assert manifest.groups == []


@pytest.mark.parametrize("task", BUNDLED_TASKS)
def test_bundled_default_ships_every_task_from_nvcr(task):
    spec = load(None).resolve(None, task)
    assert spec.name == task
    assert spec.image.registry == "nvcr.io"
    assert spec.image.reference.startswith("nvcr.io/nvidia/tao/")
