#!/usr/bin/env python3
"""Checks of what a browser made of cocomem's reports (scripts/report-checks.sh).

  report-checks.py png FILE.png              the screenshot is not one colour
  report-checks.py dom FILE.html TITLE...    the dumped DOM has every TITLE, and
                                             each memory strip's rows add up to
                                             the guest's memory (data-guest-bytes)
  report-checks.py log FILE.log              the browser logged no console error
  report-checks.py trace FILE.json           Chrome trace event format: required
                                             fields, monotonic ts per track
  report-checks.py labels FILE.html          the measurement the page's added
                                             script left (report-checks.sh's
                                             measure_labels): every text of every
                                             memory strip lies inside its SVG
Prints one line per problem and exits 1 if there is any.
"""
import json
import struct
import sys
import zlib
from html.parser import HTMLParser


def png_colours(path, limit=64):
    """Distinct pixel values of an 8-bit RGB/RGBA PNG (stops counting at limit)."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # undo the PNG filters
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:
            for x in range(0, stride, bpp * 3):
                colours.add(bytes(line[x:x + 3]))
            if len(colours) >= limit:
                break
        prev = line
    return len(colours)


class Strips(HTMLParser):
    """Collects each strip's guest bytes and, per aspect row, the sum of its ranges' data-bytes."""
    def __init__(self):
        super().__init__()
        self.strips, self.aspect, self.text = [], None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and "strip" in (a.get("class") or "").split():
            self.strips.append({"label": a.get("data-label"), "guest": int(a["data-guest-bytes"]), "rows": {}})
        elif tag == "g" and "data-aspect" in a and self.strips:
            self.aspect = a["data-aspect"]
            self.strips[-1]["rows"][self.aspect] = 0
        elif tag == "rect" and self.aspect and "data-bytes" in a:
            self.strips[-1]["rows"][self.aspect] += int(a["data-bytes"])

    def handle_endtag(self, tag):
        if tag == "g":
            self.aspect = None

    def handle_data(self, d):
        self.text.append(d)


def check_dom(path, titles):
    problems = []
    p = Strips()
    p.feed(open(path, encoding="utf-8").read())
    text = " ".join(" ".join(p.text).split())
    for t in titles:
        if t not in text:
            problems.append(f"{path}: '{t}' is not on the page")
    for s in p.strips:
        if not s["rows"]:
            problems.append(f"{path}: strip '{s['label']}' has no rows")
        for aspect, total in s["rows"].items():
            if total != s["guest"]:
                problems.append(f"{path}: strip '{s['label']}' row '{aspect}' adds up to {total} bytes, not the guest's {s['guest']}")
    print(f"{path}: {len(p.strips)} strips")
    return problems


def check_log(path):
    bad = []
    for line in open(path, errors="replace"):
        # Console messages and script errors; dbus and GPU noise of a headless container is not the page's.
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line or "net::ERR_" in line:
            bad.append(f"{path}: {line.strip()[:200]}")
    return bad


def check_trace(path):
    problems = []
    try:
        obj = json.load(open(path))
        events = obj["traceEvents"]
    except Exception as e:
        return [f"{path}: not a JSON object with traceEvents ({e})"]
    last = {}
    for i, e in enumerate(events):
        if not all(k in e for k in ("name", "ph", "pid", "tid")):
            problems.append(f"{path}: event {i} lacks name/ph/pid/tid")
            continue
        ph = e["ph"]
        if ph == "M":
            if "args" not in e:
                problems.append(f"{path}: metadata event {i} without args")
            continue
        if not isinstance(e.get("ts"), (int, float)):
            problems.append(f"{path}: event {i} without a numeric ts")
            continue
        if ph == "X" and not (isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0):
            problems.append(f"{path}: X event {i} without dur")
        if ph == "C" and not all(isinstance(v, (int, float)) for v in e.get("args", {}).values()):
            problems.append(f"{path}: C event {i} with non-numeric args")
        key = (e["pid"], e["tid"], e["name"] if ph == "C" else "")
        if key in last and e["ts"] < last[key]:
            problems.append(f"{path}: ts goes back on track {key}: {e['ts']} < {last[key]}")
        last[key] = e["ts"]
    print(f"{path}: {len(events)} events")
    return problems


def check_labels(path):
    """The <pre id="label-check"> the measuring script wrote into the dumped DOM."""
    text = open(path, encoding="utf-8").read()
    start = text.find('<pre id="label-check">')
    if start < 0:
        return [f"{path}: no label measurement (the script did not run)"]
    body = text[start + len('<pre id="label-check">'):text.find("</pre>", start)]
    lines = [l for l in body.splitlines() if l.strip()]
    counted = [l for l in lines if l.startswith("labels ")]
    problems = [f"{path}: {l}" for l in lines if l.startswith("outside ")]
    if not counted or int(counted[0].split()[1]) == 0:
        problems.append(f"{path}: no strip label was measured")
    else:
        print(f"{path}: {counted[0].split()[1]} strip labels measured")
    return problems


def main():
    what, path, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if what == "png":
        n = png_colours(path)
        problems = [] if n > 1 else [f"{path}: the page is blank (one colour)"]
        print(f"{path}: {n}{'+' if n >= 64 else ''} colours")
    elif what == "dom":
        problems = check_dom(path, rest)
    elif what == "log":
        problems = check_log(path)
    elif what == "trace":
        problems = check_trace(path)
    elif what == "labels":
        problems = check_labels(path)
    else:
        problems = [f"unknown check {what}"]
    for p in problems:
        print("FAIL: " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
