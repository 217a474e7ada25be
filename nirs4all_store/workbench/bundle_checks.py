"""Guards for reading a `.n4a` bundle before anything in it is trusted: safe member names,
bounded reads of damaged or inflated members, bounded JSON (size and nesting depth).

Every failure is a `BundleError` naming the bundle and the member (issue 15 items 6, 7).
"""

from __future__ import annotations

import json
import posixpath
import re
import zipfile
import zlib
from typing import Any

from nirs4all_store.errors import BundleError

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
#: manifest.json and chain.json are parsed whole: a 1 MB bundle whose manifest inflated to
#: 1 GB peaked at 6.1 GB of memory under the bomb guard alone (issue 15 item 6). Real ones
#: are a few kB (a chain lists its steps and artifact ids), so a few MB is ample.
MAX_JSON_BYTES = 8 * 1024**2
#: json.loads recurses once per nesting level; a 5,000-deep chain.json raised RecursionError.
MAX_JSON_DEPTH = 64


def check_member_name(name: str) -> None:
    """Refuse names that could escape a folder if extracted (absolute, drive, `..`)."""
    normalised = name.replace("\\", "/")
    parts = normalised.split("/")
    if (
        not name
        or normalised.startswith("/")
        or _WINDOWS_DRIVE.match(normalised)
        or ".." in parts
        or "\x00" in name
        or posixpath.normpath(normalised).startswith("..")
    ):
        raise BundleError(f"unsafe member name {name!r} in bundle: refusing to read it")


def read_member(zf: zipfile.ZipFile, name: str, where: str, limit: int | None = None) -> bytes:
    """A member's bytes (at most `limit`, whatever its header claims); damaged data is a
    BundleError, not zlib's or zipfile's exception."""
    try:
        with zf.open(name) as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise BundleError(f"{where}: member {name} is damaged: {exc}") from None
    if limit is not None and len(data) > limit:
        raise BundleError(
            f"{where}: {name} inflates to more than {limit:,} bytes: not a real bundle's "
            "metadata, refusing to parse it"
        )
    return data


def json_depth_ok(raw: str, limit: int) -> bool:
    """Nesting depth of JSON text within `limit` (brackets inside strings skipped)."""
    depth = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def read_json(zf: zipfile.ZipFile, name: str, where: str) -> Any:
    try:
        raw = read_member(zf, name, where, MAX_JSON_BYTES)
    except KeyError:
        raise BundleError(f"{where} has no {name}: not a nirs4all .n4a bundle") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: {name} is not UTF-8 text: {exc}") from None
    if not json_depth_ok(text, MAX_JSON_DEPTH):
        raise BundleError(f"{where}: {name} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{where}: {name} is not valid JSON: {exc}") from None
