#!/usr/bin/env python3
"""Opens N mutual-TLS connections (HTTP/1.1, one completed GET /metadata each, then idle),
holds them, and prints the growth of the server's resident memory per connection.
Usage: idle_rss.py PORT PKI_DIR N PID..."""
import socket
import ssl
import sys
import time
import uuid

port, pki, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pids = sys.argv[4:]


def rss_kb():
    total = 0
    for pid in pids:
        procs = [pid]
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                procs += f.read().split()
        except OSError:
            pass
        for p in procs:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
    return total


ctx = ssl.create_default_context(cafile=f"{pki}/root.pem")
ctx.load_cert_chain(f"{pki}/client-chain.pem", f"{pki}/client.key")
ctx.set_alpn_protocols(["http/1.1"])
before = rss_kb()
conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
    s.sendall(
        f"GET /metadata HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: {uuid.uuid4()}\r\n"
        f"X-Correlation-Id: {uuid.uuid4()}\r\n\r\n".encode()
    )
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed before the answer")
        got += chunk
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected answer: " + got[:60].decode(errors="replace"))
    conns.append(s)
time.sleep(2)
after = rss_kb()
print(f"idle_connections={n} rss_before_kb={before} rss_after_kb={after} per_conn_kb={(after - before) / n:.1f}")
