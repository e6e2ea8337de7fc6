#!/usr/bin/env python3
"""Build the sample TAO toolkit image from Debian's busybox-static, with no registry.

Usage: python scripts/build_sample_image.py [TAG]   (default tao-sample/toolkit:1)

Every task name the seed lists runs examples/sample-toolkit/task.sh. Two extra names exist for the
launcher's own tests: `not_executable` (a file without the x bit) and no binary at all for `missing`.
"""

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

TASKS = [
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
APPLETS = [
    "sh",
    "echo",
    "printf",
    "sleep",
    "id",
    "cat",
    "ls",
    "df",
    "awk",
    "sed",
    "seq",
    "env",
    "mkdir",
    "basename",
    "nc",
    "true",
    "false",
    "yes",
    "head",
    "kill",
    "ps",
    "touch",
    "rm",
    "wc",
    "grep",
    "stty",
    "tty",
    "httpd",
    "dd",
    "sha256sum",
    "stat",
    "date",
    "ln",
    "mv",
    "mkfifo",
    "truncate",
]
ROOT = Path(__file__).resolve().parent.parent


def _busybox() -> bytes:
    """A busybox that needs no libc: the image has nothing else."""
    for candidate in ("/bin/busybox", shutil.which("busybox")):
        if candidate and Path(candidate).is_file():
            data = Path(candidate).read_bytes()
            if b"ld-linux" not in data[:4096]:  # a dynamic binary names its loader near the start
                return data
    sys.exit("build_sample_image: no static busybox found; install Debian's busybox-static")


def _add(
    tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o755, link: str | None = None, directory: bool = False
) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if directory:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tar.addfile(info)
    else:
        info.size = len(data or b"")
        tar.addfile(info, io.BytesIO(data or b""))


def rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "usr", "usr/local", "usr/local/bin", "opt", "opt/tao", "tmp", "etc", "workspace", "dev", "proc", "sys"):
            _add(tar, directory, directory=True, mode=0o1777 if directory == "tmp" else 0o755)
        _add(tar, "bin/busybox", data=_busybox())
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", link="busybox")
        _add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", mode=0o644)
        _add(tar, "etc/group", data=b"root:x:0:\nnogroup:x:65534:\n", mode=0o644)
        _add(tar, "opt/tao/task.sh", data=(ROOT / "examples/sample-toolkit/task.sh").read_bytes())
        for task in TASKS:
            _add(tar, f"usr/local/bin/{task}", link="/opt/tao/task.sh")
        _add(tar, "usr/local/bin/not_executable", data=b"#!/bin/sh\necho never\n", mode=0o644)
    return buffer.getvalue()


def main() -> None:
    tag = sys.argv[1] if len(sys.argv) > 1 else "tao-sample/toolkit:1"
    # CMD: what `tao <task>` alone runs on a terminal, as a toolkit image's shell.
    changes = ["ENV PATH=/usr/local/bin:/bin", "WORKDIR /workspace", 'CMD ["/bin/sh"]']
    command = ["docker", "import"]
    for change in changes:
        command += ["--change", change]
    subprocess.run([*command, "-", tag], input=rootfs(), check=True, stdout=subprocess.DEVNULL)
    print(tag)


if __name__ == "__main__":
    main()
