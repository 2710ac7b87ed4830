"""Loads the generated stubs of proto/rill/v1 (see clients/python/generate.sh).

protoc writes them as the top-level package ``rill.v1`` (``from rill.v1 import log_pb2``), so the
directory they were generated into has to be on ``sys.path``. It is ``$RILL_PY_GEN_DIR`` if set, else
``clients/python/gen`` next to this package. Importing this module puts that directory first on
``sys.path`` once and fails with an ImportError that says how to generate the stubs if they are not
there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

GEN_DIR = Path(os.environ.get("RILL_PY_GEN_DIR") or Path(__file__).resolve().parent.parent / "gen")

if not (GEN_DIR / "rill" / "v1" / "log_pb2.py").is_file():
    raise ImportError(
        f"the Rill Python stubs are not generated in {GEN_DIR}: run clients/python/generate.sh"
        + (f" {GEN_DIR}" if "RILL_PY_GEN_DIR" in os.environ else "")
        + " (needs: apt-get install python3-grpcio protobuf-compiler protobuf-compiler-grpc)"
    )
if str(GEN_DIR) not in sys.path:
    sys.path.insert(0, str(GEN_DIR))

from rill.v1 import (  # noqa: E402  (needs the sys.path entry above)
    admin_pb2,
    admin_pb2_grpc,
    cluster_pb2,
    cluster_pb2_grpc,
    log_pb2,
    log_pb2_grpc,
    record_pb2,
)

__all__ = [
    "GEN_DIR",
    "admin_pb2",
    "admin_pb2_grpc",
    "cluster_pb2",
    "cluster_pb2_grpc",
    "log_pb2",
    "log_pb2_grpc",
    "record_pb2",
]
