#!/usr/bin/env python3
"""A transform for the exec engine's jsonl protocol (see src/engines/engine.ts).

Keeps a running total across batches; a snapshot is {"total", "count"} and a start with that
checkpoint continues from it. Messages whose data is:
  a number       -> added to the total; output {"data": total, "time": message time}
  "boom"         -> the whole batch fails with {"op":"error"} and the state is left as it was
  {"echo": s}    -> output {"data": s} (for large lines)
  {"say": s}     -> writes s to stdout as plain output and to stderr, outputs nothing
  {"exit": n}    -> exits with code n at once
"""
import json
import sys

total = 0
count = 0


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for raw in sys.stdin:
    msg = json.loads(raw)
    op = msg.get("op")
    if op == "start":
        checkpoint = msg.get("checkpoint")
        if checkpoint:
            total = checkpoint["total"]
            count = checkpoint["count"]
        print("sum: starting at %d" % total, flush=True)
        send({"op": "started"})
    elif op == "batch":
        outputs = []
        t, c = total, count
        failed = None
        for m in msg["messages"]:
            data = m["data"]
            if data == "boom":
                failed = "cannot add boom at offset %d" % m["offset"]
                break
            if isinstance(data, dict) and "exit" in data:
                sys.exit(data["exit"])
            if isinstance(data, dict) and "echo" in data:
                outputs.append({"data": data["echo"]})
                continue
            if isinstance(data, dict) and "say" in data:
                print(data["say"], flush=True)
                sys.stderr.write("err: %s\n" % data["say"])
                sys.stderr.flush()
                continue
            t += data
            c += 1
            outputs.append({"data": t, "time": m["time"]})
        if failed is not None:
            send({"op": "error", "id": msg["id"], "error": failed})
        else:
            total, count = t, c
            send({"op": "outputs", "id": msg["id"], "outputs": outputs})
    elif op == "snapshot":
        send({"op": "snapshot", "id": msg["id"], "state": {"total": total, "count": count}})
    elif op == "stop":
        sys.exit(0)
