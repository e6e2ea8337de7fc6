"""The task manifest: which image ships each task.

Reads NVIDIA's launcher config formats:
  1.0  dockers.<image> = {docker_registry, docker_tag, docker_digest?, tasks}
  2.0  dockers.<image>.<tag> = {docker_registry, docker_digest?, tasks}
  3.0  task_group.<group>.dockers.<image>.<tag> = {docker_registry, docker_digest?, tasks}
Each tag entry may also carry `subtasks: {task: [names]}`, which `tao <task> --help` lists;
NVIDIA's launcher ignores that key, so a file stays usable by both. Each image's registry, name,
tag and digest must parse as the engine parses references (reference.py): an error names the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tao_server.errors import ManifestError, UnknownTask
from tao_server.images import reference

BUNDLED_SOURCE = "bundled default manifest"


@dataclass(frozen=True)
class TaskImage:
    registry: str
    repository: str
    tag: str
    digest: str | None = None

    @property
    def reference(self) -> str:
        name = f"{self.registry}/{self.repository}" if self.registry else self.repository
        ref = f"{name}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


@dataclass(frozen=True)
class TaskSpec:
    group: str | None
    name: str
    image: TaskImage
    subtasks: tuple[str, ...] = ()


@dataclass
class Manifest:
    source: str
    format_version: str
    toolkit_version: str | None
    groups: list[str] = field(default_factory=list)
    tasks: dict[tuple[str | None, str], TaskSpec] = field(default_factory=dict)

    def resolve(self, group: str | None, task: str) -> TaskSpec:
        """The task's spec; without a group, the first group (in manifest order) that has it."""
        if group is not None:
            spec = self.tasks.get((group, task))
            if spec is None:
                known = sorted(name for g, name in self.tasks if g == group)
                if group not in self.groups:
                    raise UnknownTask(
                        f"unknown task group {group!r};{did_you_mean(group, self.groups)} groups: {', '.join(self.groups) or 'none'}",
                        field="group",
                    )
                raise UnknownTask(
                    f"task group {group!r} has no task {task!r};{did_you_mean(task, known)} its tasks: {', '.join(known)}", field="task"
                )
            return spec
        for (_, name), spec in self.tasks.items():
            if name == task:
                return spec
        known = sorted({name for _, name in self.tasks})
        raise UnknownTask(f"unknown task {task!r};{did_you_mean(task, known)} known tasks: {', '.join(known)}", field="task")

    def images(self) -> list[TaskImage]:
        return sorted({spec.image for spec in self.tasks.values()}, key=lambda image: image.reference)

    def tasks_of(self, image: TaskImage) -> list[str]:
        """The names of the tasks that run in `image`, sorted."""
        return sorted({spec.name for spec in self.tasks.values() if spec.image == image})


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' did you mean X?' for the known names closest to a mistyped one; "" when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" did you mean {' or '.join(close)}?" if close else ""


def load(path: Path | None) -> Manifest:
    """The manifest at `path`, or the bundled default when `path` is None."""
    if path is None:
        text = resources.files("tao_server.images").joinpath("default_manifest.json").read_text()
        return parse(text, BUNDLED_SOURCE)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the task manifest: {exc.strerror}", source=str(path)) from None
    return parse(text, str(path))


def parse(text: str, source: str) -> Manifest:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{source}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}", source=source) from None
    reader = _Reader(source)
    reader.expect(data, dict, "the top level", "an object")
    version = _format_version(reader, data)
    manifest = Manifest(source=source, format_version=version, toolkit_version=_opt_str(data.get("toolkit_version")))
    if version == "1.0":
        for image_name, entry in reader.object(data, "dockers").items():
            key = f"dockers.{image_name}"
            reader.expect(entry, dict, key, "an object")
            _add_tag(reader, manifest, None, (image_name, key), (reader.string(entry, "docker_tag", key), f"{key}.docker_tag"), entry, key)
    elif version == "2.0":
        _add_dockers(reader, manifest, None, reader.object(data, "dockers"), "dockers")
    else:
        for group, group_data in reader.object(data, "task_group").items():
            key = f"task_group.{group}"
            reader.expect(group_data, dict, key, "an object")
            manifest.groups.append(group)
            _add_dockers(reader, manifest, group, reader.object(group_data, "dockers", key), f"{key}.dockers")
    if not manifest.tasks:
        raise ManifestError(f"{source}: the manifest lists no tasks", source=source)
    return manifest


def _format_version(reader: _Reader, data: dict[str, Any]) -> str:
    if "format_version" not in data:
        raise ManifestError(
            f"{reader.source}: format_version: missing; expected 1.0, 2.0 or 3.0", field="format_version", source=reader.source
        )
    raw = data["format_version"]
    # NVIDIA's files write 2.0 as a number; accept the few exact spellings, nothing rounded.
    version = _FORMAT_VERSIONS.get(raw) if not isinstance(raw, bool) and isinstance(raw, (int, float, str)) else None
    if version is None:
        raise ManifestError(
            f"{reader.source}: format_version: {raw!r} is not supported; expected 1.0, 2.0 or 3.0",
            field="format_version",
            source=reader.source,
        )
    return version


_FORMAT_VERSIONS: dict[object, str] = {}
for _major in (1, 2, 3):
    for _spelling in (_major, float(_major), str(_major), f"{_major}.0"):
        _FORMAT_VERSIONS[_spelling] = f"{_major}.0"


def _add_dockers(reader: _Reader, manifest: Manifest, group: str | None, dockers: dict[str, Any], key: str) -> None:
    for image_name, tags in dockers.items():
        image_key = f"{key}.{image_name}"
        reader.expect(tags, dict, image_key, "an object mapping tags to {docker_registry, tasks}")
        for tag, entry in tags.items():
            reader.expect(entry, dict, f"{image_key}.{tag}", "an object")
            _add_tag(reader, manifest, group, (image_name, image_key), (tag, f"{image_key}.{tag}"), entry, f"{image_key}.{tag}")


def _add_tag(
    reader: _Reader, manifest: Manifest, group: str | None, name: tuple[str, str], tag: tuple[str, str], entry: dict[str, Any], key: str
) -> None:
    """The tasks of one image tag; `name` and `tag` are (value, the key that holds it), for errors."""
    image = TaskImage(
        registry=reader.string(entry, "docker_registry", key, allow_empty=True),
        repository=name[0],
        tag=tag[0],
        digest=_opt_str(entry.get("docker_digest")),
    )
    _check_reference(
        reader, image, {"registry": f"{key}.docker_registry", "repository": name[1], "tag": tag[1], "digest": f"{key}.docker_digest"}
    )
    tasks = entry.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks):
        raise ManifestError(
            f"{reader.source}: {key}.tasks: expected a list of task names, got {tasks!r}", field=f"{key}.tasks", source=reader.source
        )
    subtasks = entry.get("subtasks", {})
    reader.expect(subtasks, dict, f"{key}.subtasks", "an object mapping task names to lists of subtasks")
    for task in tasks:
        known = subtasks.get(task, [])
        if not isinstance(known, list) or not all(isinstance(s, str) for s in known):
            raise ManifestError(
                f"{reader.source}: {key}.subtasks.{task}: expected a list of names", field=f"{key}.subtasks.{task}", source=reader.source
            )
        # A task listed twice in one group: the first entry wins, as in NVIDIA's launcher order.
        manifest.tasks.setdefault((group, task), TaskSpec(group, task, image, tuple(known)))


def _check_reference(reader: _Reader, image: TaskImage, keys: dict[str, str]) -> None:
    """ManifestError naming the key and value of the piece of `image` the engine could not parse."""
    problem = reference.problems(image.registry, image.repository, image.tag, image.digest)
    if problem is None:
        return
    value = {"registry": image.registry, "repository": image.repository, "tag": image.tag, "digest": image.digest}[problem.piece]
    key = keys[problem.piece]
    raise ManifestError(
        f"{reader.source}: {key}: {value!r} is not an image reference the engine can parse: {problem.why}", field=key, source=reader.source
    )


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


class _Reader:
    """Typed access to JSON values that names the offending key in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def expect(self, value: Any, kind: type, key: str, described: str) -> None:
        if not isinstance(value, kind):
            raise ManifestError(f"{self.source}: {key}: expected {described}, got {type(value).__name__}", field=key, source=self.source)

    def object(self, data: dict[str, Any], name: str, parent: str = "") -> dict[str, Any]:
        key = f"{parent}.{name}" if parent else name
        if name not in data:
            raise ManifestError(f"{self.source}: {key}: missing", field=key, source=self.source)
        value = data[name]
        self.expect(value, dict, key, "an object")
        return value

    def string(self, data: dict[str, Any], name: str, parent: str, allow_empty: bool = False) -> str:
        key = f"{parent}.{name}"
        value = data.get(name)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise ManifestError(f"{self.source}: {key}: expected a string, got {value!r}", field=key, source=self.source)
        return value
