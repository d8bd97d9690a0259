"""Reading what W&B wrote offline, for the tracker tests (tests/unit/results/test_trackers.py,
tests/e2e/test_trackers_e2e.py): W&B 0.2x+ has no Python reader of its ``.wandb`` files, so they are read
here with W&B's own record schema (``wandb.proto``)."""
import json
from pathlib import Path


def wandb_records(path):
    """The protobuf records (W&B's own schema, ``wandb.proto``) of an offline run's ``.wandb``
    file: a 7-byte header, then LevelDB-log chunks (crc32 4, length 2, type 1: full / first /
    middle / last) in 32 KiB blocks."""
    import struct

    from wandb.proto import wandb_internal_pb2
    data, offset, parts, out = path.read_bytes(), 7, b"", []
    while offset + 7 <= len(data):
        left = 32768 - offset % 32768
        if left < 7:
            offset += left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset:offset + 7])
        if kind == 0:
            break
        parts += data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # a record complete
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            out.append(record)
            parts = b""
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def wandb_runs(wandb_dir: Path) -> dict[str, dict]:
    """Display name -> ``{"run": RunRecord, "history": [...], "config": {...}, "summary": {...},
    "exit_code": int}`` of every offline run under ``wandb_dir`` (``<experiment>/wandb``); call
    ``wandb.teardown()`` first in a process that logged them (its service flushes the files)."""
    runs = {}
    for f in Path(wandb_dir).glob("offline-run-*/run-*.wandb"):
        records = wandb_records(f)

        def of(kind, records=records):
            return [r for r in records if r.WhichOneof("record_type") == kind]
        (run,) = [r.run for r in of("run")]
        (exit_code,) = [r.exit.exit_code for r in of("exit")]
        runs[run.display_name] = {
            "run": run, "exit_code": exit_code,
            "history": [{_key(i): json.loads(i.value_json) for i in r.history.item} for r in of("history")],
            "config": {_key(i): json.loads(i.value_json) for r in of("config") for i in r.config.update},
            "summary": {_key(i): json.loads(i.value_json) for r in of("summary") for i in r.summary.update}}
    return runs
