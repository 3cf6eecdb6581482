"""Error notebook and dataset versions: ErrorCase, Dataset, DatasetVersion, DatasetExample (see the issues)."""
