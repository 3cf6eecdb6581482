"""Downloads of a ready version's exports: one split as JSONL or Parquet, or the Hugging Face folder as a zip.

Only files the stored exports dict lists are served (never a path from the request), under ARTIFACT_ROOT.
"""

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from datasets_app.models import DatasetVersion
from datasets_app.selectors_datasets import export_file, hf_files
from llmops.roles import role_required

CHUNK = 1024 * 1024


def file_stem(version: DatasetVersion) -> str:
    """ "<dataset>-v3": the dataset's name made safe for a file name."""
    name = re.sub(r"[^\w.-]+", "-", version.dataset.name, flags=re.UNICODE).strip("-.") or "dataset"
    return f"{name}-v{version.number}"


@role_required("datasets.view")
@require_GET
def download_split(request, pk: int, fmt: str, split: str):
    version = get_object_or_404(DatasetVersion.objects.select_related("dataset"), pk=pk)
    path = export_file(version, fmt, split)
    if path is None:
        raise Http404(f"{version} has no {fmt} export of the {split} split")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{file_stem(version)}-{split}.{fmt}")  # noqa: SIM115


class _Pipe(io.RawIOBase):
    """A write-only, unseekable sink that zipfile writes to; the bytes are handed on as they come."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def zip_stream(files: list[tuple[Path, str]], folder: str) -> Iterator[bytes]:
    """A zip of `files` (stored, not deflated: Arrow shards barely compress) produced while it is sent."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path, name in files:
            info = zipfile.ZipInfo.from_file(path, f"{folder}/{name}")
            with open(path, "rb") as source, zf.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


@role_required("datasets.view")
@require_GET
def download_hf(request, pk: int):
    version = get_object_or_404(DatasetVersion.objects.select_related("dataset"), pk=pk)
    files = hf_files(version)
    if not files:
        raise Http404(f"{version} has no Hugging Face export")
    stem = file_stem(version)
    response = StreamingHttpResponse(zip_stream(files, stem), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, f"{stem}-hf.zip")
    return response
