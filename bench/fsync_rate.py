#!/usr/bin/env python3
"""Serial append + fdatasync of 20 KB records in DIR for SECONDS: the rate a server that
commits one message at a time could reach on this disk (group commit must beat it).
Usage: fsync_rate.py DIR [SECONDS]"""
import os
import sys
import time

d = sys.argv[1]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 3
path = os.path.join(d, "fsync-probe.bin")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
record = os.urandom(20480)
n = 0
t0 = time.monotonic()
while time.monotonic() - t0 < secs:
    os.write(fd, record)
    os.fdatasync(fd)
    n += 1
elapsed = time.monotonic() - t0
os.close(fd)
os.unlink(path)
print(f"fdatasync_per_s={n / elapsed:.0f}")
