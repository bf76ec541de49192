"""Typed stage records: what one stage hands the next (and the release run, card, publish).

Each record is frozen pydantic, written as JSON with `kind` and `schema_version`, and read
back through `read_record`, which names the file and the key when a record is not valid.
"""

from glm51.records.base import Record, ToolVersions, read_record, write_record
from glm51.records.bench import BenchFigure, BenchRecord, GateResult
from glm51.records.fidelity import FidelityRecord
from glm51.records.image import ImageRecord
from glm51.records.quantize import QuantizeRecord
from glm51.records.smoke import SmokeCheck, SmokeRecord

__all__ = [
    "BenchFigure",
    "BenchRecord",
    "FidelityRecord",
    "GateResult",
    "ImageRecord",
    "QuantizeRecord",
    "Record",
    "SmokeCheck",
    "SmokeRecord",
    "ToolVersions",
    "read_record",
    "write_record",
]
