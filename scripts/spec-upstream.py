#!/usr/bin/env python3
"""A stand-in for the provider's own system behind a forwarding receiver, for
scripts/schemathesis.sh: it answers every BaRS route with the NHS OpenAPI spec's own
success example for it, so that a property-based run reaches every interaction of the
receiver rather than its 501 for the ones the inbox does not implement.

    scripts/spec-upstream.py EXAMPLES_DIR [PORT]

EXAMPLES_DIR is the spec's examples1.4.0/ directory; PORT defaults to 8090 (loopback only).
Point a receiver at it with [handler] kind = "forward" and [upstream] url =
"http://127.0.0.1:PORT". Development use only: it answers anything, and keeps nothing.
"""

import http.server
import pathlib
import re
import sys

ROUTES = [
    ("POST", r"/\$process-message", "process_message/POST-success.json"),
    ("GET", r"/MessageDefinition", "message_definition/MessageDefinition_ServiceRequest-request_CaseTransfer.json"),
    ("GET", r"/Slot", "slots/GET-success.json"),
    ("GET", r"/Appointment", "appointment/GET-success.json"),
    ("GET", r"/ServiceRequest", "service_request/GET-success.json"),
    ("POST", r"/Appointment", "appointment/id/GET-success.json"),
    ("POST", r"/ServiceRequest", "service_request/id/GET-success.json"),
    ("GET|PUT|PATCH", r"/Appointment/[^/]+", "appointment/id/GET-success.json"),
    ("GET|PUT|PATCH", r"/ServiceRequest/[^/]+", "service_request/id/GET-success.json"),
    ("DELETE", r"/(Appointment|ServiceRequest)/[^/]+", "200_DELETE.json"),
]


def handler(examples: pathlib.Path):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            for methods, pattern, example in ROUTES:
                if self.command in methods.split("|") and re.fullmatch(pattern, path):
                    body = (examples / example).read_bytes()
                    self.send_response(200)
                    break
            else:
                body = b'{"resourceType": "OperationOutcome", "issue": []}'
                self.send_response(404)
            self.send_header("content-type", "application/fhir+json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

        def log_message(self, *args):
            pass

    return Handler


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    examples = pathlib.Path(sys.argv[1])
    if not (examples / "slots/GET-success.json").is_file():
        sys.exit(f"{examples}: not the spec's examples1.4.0/ directory")
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8090
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler(examples))
    print(f"spec upstream on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
