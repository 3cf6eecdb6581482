"""Command line: ``python -m workers.train.cli config.json [--resume]``, alone or as each torchrun worker.

Rank 0 prints each report as one line ``@@train-report {json}`` (what ``launch`` reads) and answers "stop"
once ``<output_dir>/STOP`` exists. A failure is written to ``<output_dir>/error.json`` for ``launch`` to
raise again; the result is in ``<output_dir>/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from workers.train.config import ConfigError, TrainConfig
from workers.train.ddp import ERROR_FILE, REPORT_PREFIX, STOP_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.train.cli", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a JSON file of TrainConfig fields")
    parser.add_argument("--resume", action="store_true", help="go on from the latest checkpoint")
    args = parser.parse_args(argv)
    main_rank = os.environ.get("RANK", "0") == "0"
    config = None
    try:
        config = TrainConfig.from_dict(json.loads(args.config.read_text()))
        stop_file = Path(config.output_dir) / STOP_FILE

        def report(**metrics) -> str | None:
            print(REPORT_PREFIX + json.dumps(metrics), flush=True)
            return "stop" if stop_file.exists() else None

        from workers.train.loop import train

        result = train(config, report if main_rank else None, resume=args.resume)
    except Exception as exc:
        if main_rank and config is not None:
            error = {"type": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, ConfigError):
                error["problems"] = exc.problems
            (Path(config.output_dir) / ERROR_FILE).write_text(json.dumps(error))
        raise
    if main_rank:
        print(f"{result.status}: step {result.final_step}, results in {result.result_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
