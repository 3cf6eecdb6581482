"""Reading uploaded error cases (JSONL, CSV): streaming, checked line by line. Pure Python, no Django."""

from datasets_app.ingest.parse import ParsedFile, detect_format, parse_file
from datasets_app.ingest.rows import SEVERITIES, TASK_TYPES, CaseRow, LineError

__all__ = ["SEVERITIES", "TASK_TYPES", "CaseRow", "LineError", "ParsedFile", "detect_format", "parse_file"]
