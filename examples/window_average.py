#!/usr/bin/env python3
"""The window-average transform as a cei external-engine program (standard library only).

The same algorithm, output shape and snapshot shape as src/transforms/window-average.ts; read the
comment at the top of that file for the semantics (window (t - window, t], `count`, late messages).
The two must agree: the tests feed both the same input and compare.

Protocol: line-delimited JSON, one object per line, on stdin/stdout.
  {"op":"start","config":{...},"checkpoint":<state|null>}  ->  {"op":"started"}
  {"op":"batch","id":N,"messages":[{"stream","offset","time","data"},...]}
      ->  {"op":"outputs","id":N,"outputs":[{"data":{...},"time":t},...]}
      or  {"op":"error","id":N,"error":"<reason>"}  (the batch is not applied; keep running)
  {"op":"snapshot","id":N}  ->  {"op":"snapshot","id":N,"state":<state>}
  {"op":"stop"}, or end of stdin  ->  exit 0
A failed start is answered with an `error` op without an id; any other request that cannot be
served (unknown op, batch before start) with an `error` op carrying its id or, if it has no id
(a line that is not JSON), only with a line on stderr. Diagnostics go to stderr; stdout carries
only replies.
"""

import json
import math
import sys

COUNT_FIELD = "count"
SNAPSHOT_VERSION = 1
DEFAULT_WINDOW = 10
DEFAULT_TIME_FIELD = "time"


class TransformError(Exception):
    """A bad config, checkpoint or message; the reason is sent back to cei as is."""


def is_finite_number(v):
    # bool is a subclass of int in Python but not a number in JSON's sense, nor in the JS engine.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def js_number(v):
    # The JS engine holds every number as a double; converting here keeps big integers from
    # summing exactly in Python and rounded in JS.
    return float(v)


def validate_config(config):
    if config is None:
        return DEFAULT_WINDOW, DEFAULT_TIME_FIELD
    if not isinstance(config, dict):
        raise TransformError("window-average: config must be a JSON object")
    for key in config:
        if key not in ("window", "time_field"):
            raise TransformError(
                'window-average: unknown config key "%s" (expected "window", "time_field")' % key)
    window = config.get("window")
    if window is None:
        window = DEFAULT_WINDOW
    if not is_finite_number(window) or window <= 0:
        raise TransformError(
            'window-average: "window" must be a finite number of seconds > 0, got %s' % json.dumps(window))
    time_field = config.get("time_field")
    if time_field is None:
        time_field = DEFAULT_TIME_FIELD
    if not isinstance(time_field, str) or time_field == "":
        raise TransformError(
            'window-average: "time_field" must be a non-empty string, got %s' % json.dumps(time_field))
    if time_field == COUNT_FIELD:
        raise TransformError(
            'window-average: "time_field" may not be "%s", which the output uses' % COUNT_FIELD)
    return window, time_field


class WindowAverage:
    """The sliding window; samples are (time, {var: value}) in time order, ties in arrival order."""

    def __init__(self, config, checkpoint=None):
        self.window, self.time_field = validate_config(config)
        self.samples = [] if checkpoint is None else self._restore(checkpoint)

    def parse(self, data):
        field = self.time_field
        if not isinstance(data, dict):
            raise TransformError(
                "window-average: message data must be a JSON object, got %s" % json.dumps(data))
        t = data.get(field)
        if not is_finite_number(t):
            raise TransformError('window-average: message has no numeric time field "%s" (got %s)' % (
                field, json.dumps(t) if field in data else "nothing"))
        values = {}
        for name, value in data.items():
            if name != field and name != COUNT_FIELD and is_finite_number(value):
                values[name] = js_number(value)
        return t, values

    def process(self, batch):
        """One output per input, in order; all-or-nothing, like the JS engine's process()."""
        parsed = [self.parse(data) for data in batch]
        return [self._add(t, values) for t, values in parsed]

    def snapshot(self):
        return {
            "version": SNAPSHOT_VERSION,
            "window": self.window,
            "time_field": self.time_field,
            "samples": [{"time": t, "values": dict(values)} for t, values in self.samples],
        }

    def _add(self, t, values):
        # Held times are floats, as in JS; the output echoes the time as given.
        tf = js_number(t)
        at = len(self.samples)
        while at > 0 and self.samples[at - 1][0] > tf:
            at -= 1
        self.samples.insert(at, (tf, values))

        start = tf - self.window
        sums = {}
        count = 0
        for st, svalues in self.samples:
            if st <= start or st > tf:
                continue
            count += 1
            for name, value in svalues.items():
                acc = sums.get(name)
                # An explicit loop, not sum(): from 3.12 sum() compensates floating point error,
                # which would make Python and JS disagree in the last bits.
                if acc is None:
                    sums[name] = [value, 1]
                else:
                    acc[0] += value
                    acc[1] += 1
        out = {self.time_field: t, COUNT_FIELD: count}
        for name in sorted(sums):
            total, n = sums[name]
            out[name] = total / n

        horizon = self.samples[-1][0] - self.window
        keep_from = 0
        while keep_from < len(self.samples) and self.samples[keep_from][0] <= horizon:
            keep_from += 1
        if keep_from:
            del self.samples[:keep_from]
        return out

    def _restore(self, checkpoint):
        def bad(why):
            raise TransformError("window-average: checkpoint is not a window-average snapshot: " + why)

        if not isinstance(checkpoint, dict):
            bad("not a JSON object")
        if checkpoint.get("version") != SNAPSHOT_VERSION or isinstance(checkpoint.get("version"), bool):
            bad("unsupported version %s" % json.dumps(checkpoint.get("version")))
        if checkpoint.get("window") != self.window or checkpoint.get("time_field") != self.time_field:
            raise TransformError(
                "window-average: checkpoint was taken with window %s and time_field %s, but config has "
                "window %s and time_field %s" % (
                    json.dumps(checkpoint.get("window")), json.dumps(checkpoint.get("time_field")),
                    json.dumps(self.window), json.dumps(self.time_field)))
        raw = checkpoint.get("samples")
        if not isinstance(raw, list):
            bad('"samples" is not an array')
        samples = []
        for s in raw:
            if not isinstance(s, dict) or not is_finite_number(s.get("time")) or not isinstance(s.get("values"), dict):
                bad('a sample lacks a numeric "time" or a "values" object')
            values = {}
            for name, value in s["values"].items():
                if not is_finite_number(value):
                    bad('sample value "%s" is not a finite number' % name)
                values[name] = js_number(value)
            if samples and samples[-1][0] > s["time"]:
                bad("samples are not in time order")
            samples.append((js_number(s["time"]), values))
        return samples


def send(obj):
    # allow_nan=False: NaN is not JSON, and the JS side could not parse it.
    sys.stdout.write(json.dumps(obj, allow_nan=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(message):
    sys.stderr.write("window_average: %s\n" % message)
    sys.stderr.flush()


def main():
    transform = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        request_id = None
        op = None
        try:
            try:
                request = json.loads(line)
            except ValueError as e:
                raise TransformError("request is not JSON: %s" % e)
            if not isinstance(request, dict):
                raise TransformError("request is not a JSON object")
            request_id = request.get("id")
            op = request.get("op")
            if op == "stop":
                return 0
            if op == "start":
                transform = WindowAverage(request.get("config"), request.get("checkpoint"))
                send({"op": "started"})
            elif op == "batch":
                if transform is None:
                    raise TransformError("batch before start")
                messages = request.get("messages")
                if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                    raise TransformError('"messages" must be an array of message objects')
                outputs = transform.process([m.get("data") for m in messages])
                send({"op": "outputs", "id": request_id,
                      # The output keeps its input's stream time (ms); the data's time field is seconds.
                      "outputs": [{"data": out, "time": m.get("time")} for out, m in zip(outputs, messages)]})
            elif op == "snapshot":
                if transform is None:
                    raise TransformError("snapshot before start")
                send({"op": "snapshot", "id": request_id, "state": transform.snapshot()})
            else:
                raise TransformError("unknown op %s" % json.dumps(op))
        except TransformError as e:
            log(str(e))
            # cei takes an error without an id as the answer to start, so a request it cannot
            # match to an id (not JSON, or an id-less unknown op) is only logged.
            if op == "start":
                send({"op": "error", "error": str(e)})
            elif request_id is not None:
                send({"op": "error", "id": request_id, "error": str(e)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
