#!/usr/bin/env python
# Copyright (c) 2026, overlay.gre contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throughput of a 10 MiB TCP transfer host_a -> host_b through the lab's tunnel, with and without GRE over IPsec.

    bench/ipsec.py measure --label ipsec|plain --out FILE [--size BYTES] [--repeat N]
                           one transfer size (10 MiB by default), N times, through the tunnel as it is now; the best
                           of the runs goes into FILE (JSON, one entry per label)
    bench/ipsec.py report FILE
                           prints both figures and the ratio plain / ipsec

Meant to run `measure --label ipsec` while IPsec is on and `measure --label plain` after gre_router_ipsec was turned
off, in the same lab, then `report`; nothing runs it at the moment (see bench/README.md). The time is the receiver's,
from the first byte to the end of the stream.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SERVER = r"""
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5002)); srv.listen(1); srv.settimeout(120)
print("listening", flush=True)
conn, peer = srv.accept(); conn.settimeout(60); total = 0; first = None
while True:
    data = conn.recv(262144)
    if not data: break
    if first is None: first = time.monotonic()
    total += len(data)
end = time.monotonic()
conn.sendall(b"k"); conn.close()
print(total, (end - first) if first else 0.0)
"""

CLIENT = r"""
import socket, sys
sock = socket.create_connection((sys.argv[1], 5002), timeout=60)
chunk = b"x" * 65536; left = int(sys.argv[2])
while left > 0:
    sock.sendall(chunk[:left]); left -= min(left, len(chunk))
sock.shutdown(socket.SHUT_WR); sock.recv(1); sock.close()
"""


def transfer(src_ns="host_a", dst_ns="host_b", dst_addr="20.10.1.10", size=10 << 20):
    """(bytes received, seconds) of one TCP transfer of SIZE bytes from SRC_NS to DST_ADDR in DST_NS."""
    server = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", SERVER],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server.stdout.readline()  # listening
    client = subprocess.run(["ip", "netns", "exec", src_ns, sys.executable, "-c", CLIENT, dst_addr, str(size)],
                            capture_output=True, text=True, check=False)
    out, err = server.communicate(timeout=180)
    words = out.split()
    if client.returncode != 0 or len(words) != 2:
        raise RuntimeError("transfer failed: %s %s" % (client.stderr.strip(), err.strip()))
    return int(words[0]), float(words[1])


def measure(label, out, size, repeat):
    runs = []
    for _run in range(repeat):
        received, seconds = transfer(size=size)
        if received != size:
            raise RuntimeError("received %d of %d bytes" % (received, size))
        runs.append(seconds)
    best = min(runs)
    figure = {"bytes": size, "seconds": round(best, 3), "mib_per_s": round(size / (1 << 20) / best, 2),
              "runs": [round(r, 3) for r in runs], "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = {}
    if os.path.exists(out):
        with open(out, encoding="utf-8") as handle:
            data = json.load(handle)
    data[label] = figure
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    print("%s: %d MiB in %.3f s = %.2f MiB/s (best of %s)" % (label, size >> 20, best, figure["mib_per_s"], figure["runs"]))
    return 0


def report(path):
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    for label in ("plain", "ipsec"):
        if label in data:
            figure = data[label]
            print("%-6s %5.2f MiB/s (%d MiB in %.3f s)" % (label, figure["mib_per_s"], figure["bytes"] >> 20, figure["seconds"]))
    if "plain" in data and "ipsec" in data:
        print("ratio plain/ipsec: %.2f (IPsec keeps %.0f%% of plain GRE's throughput)"
              % (data["plain"]["mib_per_s"] / data["ipsec"]["mib_per_s"], 100 * data["ipsec"]["mib_per_s"] / data["plain"]["mib_per_s"]))
        return 0
    print("report: both figures are needed (have %s)" % ", ".join(sorted(data)))
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    mes = sub.add_parser("measure")
    mes.add_argument("--label", required=True, choices=["ipsec", "plain"])
    mes.add_argument("--out", required=True)
    mes.add_argument("--size", type=int, default=10 << 20)
    mes.add_argument("--repeat", type=int, default=2)
    rep = sub.add_parser("report")
    rep.add_argument("file")
    args = parser.parse_args(argv)
    if args.action == "measure":
        return measure(args.label, args.out, args.size, args.repeat)
    return report(args.file)


if __name__ == "__main__":
    sys.exit(main())
