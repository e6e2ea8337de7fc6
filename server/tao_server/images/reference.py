"""Image references as the engine parses them: Docker's reference grammar (distribution/reference).

    reference  := name [":" tag] ["@" digest]
    name       := [registry "/"] path            at most 255 characters
    registry   := host [":" port]                nvcr.io, localhost:5000, [::1]:5000
    path       := component ("/" component)*     lowercase letters and digits, joined by ".", "_", "__" or "-"+
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex              sha256 with 64 hex digits, ...

The manifest keeps a reference in pieces (registry, repository, tag, digest): `problems` checks
each against its rule, so that an error names the piece, and then the whole as the engine would
read it. A reference the engine cannot parse fails at load, naming the key, never when a job runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_REGISTRY = rf"{_HOST}(?::[0-9]+)?"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}  # hex digits, as the engine checks them
NAME_MAX = 255

# A registry may carry path components of its own ("nvcr.io/nvidia"): they join the repository's.
_REGISTRY_PART = re.compile(rf"{_REGISTRY}(?:/{_COMPONENT})*")
_REPOSITORY = re.compile(_PATH)
_TAG_PATTERN = re.compile(_TAG, re.ASCII)
_DIGEST_PATTERN = re.compile(_DIGEST)
_NAME = re.compile(rf"(?:{_REGISTRY}/)?{_PATH}")

RULES = {
    "registry": "a registry is a host name or IP address with an optional :port (nvcr.io, localhost:5000)",
    "repository": "a repository is lowercase letters and digits, separated by '.', '_', '__' or '-', in parts joined by '/'",
    "tag": "a tag is up to 128 letters, digits, '_', '.' and '-', and does not start with '.' or '-'",
    "digest": "a digest is ALGORITHM:HEX, such as sha256: and 64 hex digits",
}


@dataclass(frozen=True)
class Problem:
    """Which piece of a reference the engine would refuse (a key of RULES), and why."""

    piece: str
    why: str


def problems(registry: str, repository: str, tag: str, digest: str | None) -> Problem | None:
    """The first piece of the reference the engine could not parse, or None when it parses it all."""
    if registry and not _REGISTRY_PART.fullmatch(registry):
        return Problem("registry", RULES["registry"])
    if not _REPOSITORY.fullmatch(repository):
        return Problem("repository", RULES["repository"])
    if not _TAG_PATTERN.fullmatch(tag):
        return Problem("tag", RULES["tag"])
    if digest is not None:
        if not _DIGEST_PATTERN.fullmatch(digest):
            return Problem("digest", RULES["digest"])
        algorithm, _, hex_digits = digest.partition(":")
        wanted = _DIGEST_LENGTHS.get(algorithm)
        if wanted is not None and len(hex_digits) != wanted:
            return Problem("digest", f"a {algorithm} digest has {wanted} hex digits, not {len(hex_digits)}")
    name = f"{registry}/{repository}" if registry else repository
    if len(name) > NAME_MAX:
        return Problem("repository", f"the image name {name!r} is {len(name)} characters; the engine takes at most {NAME_MAX}")
    if not _NAME.fullmatch(name):  # the pieces are good apart; joined, the engine reads the first part as a registry
        return Problem("repository", f"{name!r} does not read as [REGISTRY/]REPOSITORY: {RULES['repository']}")
    return None
