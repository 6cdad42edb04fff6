#!/usr/bin/env python3
"""Checks a stream-query sink against its input, both read with kcat (key TAB value TAB headers).

usage: stream-query-check.py INPUT_DUMP SINK_DUMP

The query counts records per key. Every input record must be one change in the sink (redeliveries
told apart by lightmesh.outbox.seq and dropped), with no gap in the sequences; each key's changes,
by sequence, must count 1, 2, 3, ... up to the input's count for that key; and in log order the
last record of each key must be its latest change. Prints the number of redeliveries.
"""
import json
import sys


def rows(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                yield line.split("\t")


def main():
    input_dump, sink_dump = sys.argv[1], sys.argv[2]
    recount = {}
    records = 0
    for key, *_ in rows(input_dump):
        recount[key] = recount.get(key, 0) + 1
        records += 1
    by_sequence, last_in_log, redelivered = {}, {}, 0
    for key, value, headers in rows(sink_dump):
        fields = dict(h.split("=", 1) for h in headers.split(",") if "=" in h)
        sequence = int(fields["lightmesh.outbox.seq"])
        n = json.loads(value)["N"]
        if sequence in by_sequence:
            redelivered += 1
            if by_sequence[sequence] != (key, n):
                sys.exit(f"sequence {sequence} came as {(key, n)} and as {by_sequence[sequence]}")
        by_sequence[sequence] = (key, n)
        last_in_log[key] = n
    sequences = sorted(by_sequence)
    if sequences != list(range(records)):
        missing = sorted(set(range(records)) - set(sequences))[:5]
        sys.exit(f"{len(sequences)} changes for {records} input records; missing sequences {missing}")
    counted = {}
    for sequence in sequences:
        key, n = by_sequence[sequence]
        counted[key] = counted.get(key, 0) + 1
        if n != counted[key]:
            sys.exit(f"change {sequence} counts {key} as {n}; the recount says {counted[key]}")
    if counted != recount:
        sys.exit(f"counted {counted}, the input holds {recount}")
    for key, n in recount.items():
        if last_in_log.get(key) != n:
            sys.exit(f"the last record of {key} in log order counts {last_in_log.get(key)}, the latest change {n}")
    print(f"{records} records, {len(by_sequence)} changes, {redelivered} redelivered")


main()
