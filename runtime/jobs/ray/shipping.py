"""The artifact on the workers: by path when Ray runs on this machine only (one node, no Ray
Client), else packed into the object store and unpacked once per node into a temporary folder
named after its manifest's sha256. Either way `Classifier.load` / `Translator.load` verify the
sha256 of every file on the worker."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnxpress.errors import UserError
from onnxpress.runtime.artifact import MANIFEST_NAME, Artifact
from onnxpress.runtime.jobs.ray.session import require_ray


@dataclass(frozen=True)
class ArtifactSource:
    """Where actors find the artifact: the driver's path, or a packed copy in the object store."""

    path: str
    digest: str  # sha256 of manifest.json: names the unpacked copy on each node
    packed: tuple[Any, ...] = ()  # (ObjectRef of a tar,) or () for "read `path`"

    def unpacked_path(self) -> str:
        """Where `local_path` unpacks an object-store copy on a node."""
        return str(Path(tempfile.gettempdir()) / "onnxpress-artifacts" / self.digest)

    def local_path(self) -> str:
        """A path to the artifact on this node (unpacking the object-store copy once per node)."""
        if not self.packed:
            return self.path
        import ray

        target = Path(self.unpacked_path())
        if (target / MANIFEST_NAME).is_file():
            return str(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{self.digest[:12]}-"))
        with tarfile.open(fileobj=io.BytesIO(ray.get(self.packed[0])), mode="r") as tar:
            tar.extractall(staging, filter="data")
        try:
            os.rename(staging, target)  # another actor on this node may have won the race
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return str(target)


def ship_artifact(path: str | os.PathLike, transport: str = "auto") -> ArtifactSource:
    """The artifact for the actors: by `"path"`, through the `"object-store"`, or `"auto"`:
    by path when Ray runs on this machine only, else through the object store."""
    ray = require_ray()
    artifact = Artifact.open(path)
    root = artifact.root.resolve()
    digest = hashlib.sha256((root / MANIFEST_NAME).read_bytes()).hexdigest()
    if transport == "auto":
        transport = "path" if _ray_is_this_machine(ray) else "object-store"
    if transport == "path":
        return ArtifactSource(str(root), digest)
    if transport != "object-store":
        raise UserError(f"unknown artifact transport {transport!r} (auto, path or object-store)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in [MANIFEST_NAME, *artifact.manifest.files]:
            tar.add(root / name, arcname=name)
    return ArtifactSource(str(root), digest, (ray.put(buffer.getvalue()),))


def _ray_is_this_machine(ray: Any) -> bool:
    from ray.util.client import ray as client

    if client.is_connected():
        return False
    here = ray.get_runtime_context().get_node_id()
    return all(node["NodeID"] == here for node in ray.nodes() if node.get("Alive"))
