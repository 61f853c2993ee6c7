#!/usr/bin/env python3
"""Write a one-entry launcher jar for the Cloud SDK's Firestore emulator.

firebase-tools starts the Firestore emulator as ``java -jar $FIRESTORE_EMULATOR_BINARY_PATH``.
It normally downloads its own jar, which cannot happen on a machine without internet. The
Debian package ``google-cloud-cli-firestore-emulator`` ships the same emulator, but its jar has
no ``Main-Class`` and so cannot be started with ``java -jar``. This writes a jar holding only a
manifest that names the main class and puts the system jar on the class path. Python's zipfile
is enough: no JDK tools (``jar``) are needed.

Usage: make_launcher_jar.py OUT.jar [SYSTEM_EMULATOR_JAR]
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

DEFAULT_SYSTEM_JAR = Path(
    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
)
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def manifest(system_jar: Path) -> str:
    """The manifest text; Class-Path is a URL, so an absolute path becomes ``file:/...``."""
    lines = [
        "Manifest-Version: 1.0",
        f"Main-Class: {MAIN_CLASS}",
        f"Class-Path: {system_jar.resolve().as_uri()}",
        "Created-By: scripts/make_launcher_jar.py",
    ]
    # The jar spec wants CRLF or LF line ends and a final newline; lines here are < 72 bytes
    # except Class-Path, which must be wrapped: continuation lines start with one space.
    out: list[str] = []
    for line in lines:
        raw = line.encode()
        first, rest = raw[:70], raw[70:]
        out.append(first.decode())
        while rest:
            out.append(" " + rest[:69].decode())
            rest = rest[69:]
    return "\r\n".join(out) + "\r\n\r\n"


def main(argv: list[str]) -> int:
    """Write the launcher jar; fail if the system jar is missing."""
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    system_jar = Path(argv[2]) if len(argv) == 3 else DEFAULT_SYSTEM_JAR
    if not system_jar.is_file():
        print(f"make_launcher_jar: {system_jar} not found", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as jar:
        jar.writestr("META-INF/MANIFEST.MF", manifest(system_jar))
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
