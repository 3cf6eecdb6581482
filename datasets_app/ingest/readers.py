"""Byte-level reading: sniffing the start of an upload, guessing its encoding, and bounded line reads.

Nothing here holds more than one line (at most `max_line_bytes`) and the first 64 KB of a file in memory.
"""

import codecs
import io
from typing import BinaryIO

HEAD_BYTES = 64 * 1024
BOM = codecs.BOM_UTF8


def read_head(stream: BinaryIO) -> bytes:
    """Up to HEAD_BYTES from the start (fewer only at the end of the file), for sniffing."""
    head = b""
    while len(head) < HEAD_BYTES:
        chunk = stream.read(HEAD_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return head


class Replay(io.RawIOBase):
    """A stream that serves the already-read head first, then the rest of the original stream.

    This lets the head be sniffed without needing a seekable upload; the original stream is never closed here.
    """

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def line_reader(head: bytes, stream: BinaryIO) -> io.BufferedReader:
    return io.BufferedReader(Replay(head, stream), buffer_size=HEAD_BYTES)


def not_text(head: bytes) -> str | None:
    """Why the file is not a text upload we can read line by line (a workbook, UTF-16, CR endings), or None."""
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        return "the file is an Excel workbook or an archive, not text; save it as CSV (UTF-8) or JSONL"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or head.count(b"\x00") > len(head) // 10:
        return "the file looks like UTF-16 or binary (it is full of NUL bytes); save it as UTF-8 text"
    if b"\r" in head and b"\n" not in head:
        return "the lines end with CR only (old Mac style); save the file with LF or CRLF line endings"
    return None


def sniff_encoding(head: bytes, *, complete: bool) -> str:
    """'utf-8' when the head (BOM already removed) is strict UTF-8, else 'gb18030' (a superset of GBK/GB2312).

    The incremental decoder accepts a multibyte character cut at the end of the head unless the head is the
    whole file (`complete`).
    """
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=complete)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def skip_rest_of_line(readline, first: bytes) -> int:
    """Reads past the end of an over-long line in small chunks; returns its length without the line ending."""
    size = len(first)
    chunk = first
    while not chunk.endswith(b"\n"):
        chunk = readline(HEAD_BYTES)
        if not chunk:
            return size
        size += len(chunk)
    return size - (2 if chunk.endswith(b"\r\n") else 1)


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        value, unit = n / (1024 * 1024), "MB"
    elif n >= 1024:
        value, unit = n / 1024, "KB"
    else:
        return f"{n} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def too_long(size: int, limit: int) -> str:
    """'line is 1.3 MB; the limit is 1 MB' (exact byte counts when rounding would make them look equal)."""
    shown, allowed = human_size(size), human_size(limit)
    if shown == allowed:
        shown, allowed = f"{size:,} bytes", f"{limit:,} bytes"
    return f"line is {shown}; the limit is {allowed}"
