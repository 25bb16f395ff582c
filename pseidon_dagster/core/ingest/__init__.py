"""One run of one log, as stages over batches of messages:

    plan.py     make or replay a plan (frozen parameters, where new partitions start)
    read.py     RangeReader: assigned consumer, per-partition runs inside the plan's ranges
    decode.py   a batch of values -> event times + lines/rows, bad values with their reasons
    route.py    event hour per message, timestamp window, line breaks
    segment.py  deterministic cuts (size, open files per partition)
    sink.py     per-hour writers, temporary names, manifest, publish
    run.py      Ingestor: stage -> register -> commit
"""
from ..model import FileInfo, IngestResult
from .plan import IngestError
from .read import ReadStalled
from .run import Ingestor, LeaseLost, discard_plan, ingest, parquet_schema

__all__ = ["FileInfo", "IngestError", "IngestResult", "Ingestor", "LeaseLost", "ReadStalled", "ingest",
           "discard_plan", "parquet_schema"]
