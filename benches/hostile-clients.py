#!/usr/bin/env python3
"""Attacks a running `quarry serve` the ways a hostile client would, on loopback only, and
checks after each that a normal signed Retrieve still answers correctly and that the
server's resident memory comes back down.

  benches/hostile-clients.py --pid PID --url http://127.0.0.1:8080 --key ID --secret S [--kb ID]

Attacks (each bounded in count and time):
  slowloris    N connections sending a header byte a second
  unsigned     N connections declaring a 1 MiB body and sending ~1 MiB unsigned
  connections  N idle connections at once (past [server.limits] max_connections)
  filters      requests with 20,000-clause filters
  tokens       list calls with wrapping nextTokens
  replay       a signed request replayed with another body
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "boto3"))
from sigv4 import sign  # noqa: E402


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def request(url, method, path, body, headers, timeout=30):
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as s:
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        s.sendall(head.encode() + body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.split(b"\r\n\r\n", 1)[1]


def retrieve_ok(args):
    body = json.dumps({"retrievalQuery": {"text": "vacation days"}}).encode()
    path = f"/knowledgebases/{args.kb}/retrieve"
    status, payload = request(args.url, "POST", path, body, sign(args.url + path, body, args.key, args.secret))
    return status == 200 and bool(json.loads(payload)["retrievalResults"])


def slowloris(args, n):
    parts = urllib.parse.urlsplit(args.url)
    socks, closed = [], 0
    for _ in range(n):
        try:
            s = socket.create_connection((parts.hostname, parts.port), timeout=5)
            s.sendall(b"POST /knowledgebases/x/retrieve HTTP/1.1\r\nhost: 127.0.0.1\r\n")
            socks.append(s)
        except OSError:
            closed += 1
    started = time.time()
    while time.time() - started < args.seconds and socks:
        alive = []
        for s in socks:
            try:
                s.sendall(b"x")
                alive.append(s)
            except OSError:
                closed += 1
                s.close()
        socks = alive
        time.sleep(1)
    still = len(socks)
    for s in socks:
        s.close()
    return f"{n} trickling connections: {closed} closed by the server within {args.seconds} s, {still} still open"


def unsigned_bodies(args, n):
    parts = urllib.parse.urlsplit(args.url)
    answered, reset = 0, 0
    chunk = b"{" * 65536

    def one():
        nonlocal answered, reset
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
                s.sendall(b"POST /knowledgebases/x/retrieve HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                          b"content-type: application/json\r\ncontent-length: 1048576\r\n\r\n")
                for _ in range(16):
                    s.sendall(chunk)
                if s.recv(12).startswith(b"HTTP/1.1 4"):
                    answered += 1
        except OSError:
            reset += 1

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    peak = rss_mib(args.pid)
    for t in threads:
        t.join(timeout=60)
        peak = max(peak, rss_mib(args.pid))
    return f"{n} unsigned 1 MiB bodies: {answered} answered 4xx, {reset} cut off; peak RSS {peak:.0f} MiB"


def many_connections(args, n):
    parts = urllib.parse.urlsplit(args.url)
    held, refused = [], 0
    for _ in range(n):
        try:
            held.append(socket.create_connection((parts.hostname, parts.port), timeout=5))
        except OSError:
            refused += 1
    time.sleep(0.5)
    ok = retrieve_ok(args)
    throttled = 0
    for s in held:
        s.settimeout(0.05)
        try:
            if s.recv(12).startswith(b"HTTP/1.1 429"):
                throttled += 1
        except OSError:
            pass
    for s in held:
        s.close()
    return (f"{n} idle connections: {throttled} answered 429 at once, {refused} refused; "
            f"a signed Retrieve meanwhile: {'served' if ok else 'NOT served (expected past the cap)'}")


def big_filters(args, n):
    clauses = [{"equals": {"key": "k", "value": i}} for i in range(20000)]
    body = json.dumps({"retrievalQuery": {"text": "battery"}, "retrievalConfiguration": {
        "vectorSearchConfiguration": {"filter": {"orAll": clauses}}}}).encode()
    path = f"/knowledgebases/{args.kb}/retrieve"
    started, statuses = time.time(), []
    for _ in range(n):
        statuses.append(request(args.url, "POST", path, body, sign(args.url + path, body, args.key, args.secret))[0])
    return f"{n} 20,000-clause filters: statuses {sorted(set(statuses))}, {time.time() - started:.2f} s in all"


def tokens(args, _n):
    out = []
    for token in ("offset-18446744073709551615", "offset-99999999999999999999", "offset--1"):
        body = json.dumps({"nextToken": token}).encode()
        out.append(request(args.url, "POST", "/knowledgebases/", body,
                           sign(args.url + "/knowledgebases/", body, args.key, args.secret))[0])
    return f"wrapping nextTokens: statuses {out}"


def replay(args, _n):
    path = f"/knowledgebases/{args.kb}/retrieve"
    body = json.dumps({"retrievalQuery": {"text": "battery"}}).encode()
    import hashlib
    headers = sign(args.url + path, body, args.key, args.secret, content_sha256=hashlib.sha256(body).hexdigest())
    first = request(args.url, "POST", path, body, headers)[0]
    other = json.dumps({"retrievalQuery": {"text": "salaries of everyone"}}).encode()
    second = request(args.url, "POST", path, other, headers)[0]
    return f"signed request: {first}; the same signature with another body: {second}"


ATTACKS = {"slowloris": (slowloris, 500), "unsigned": (unsigned_bodies, 400),
           "connections": (many_connections, 600), "filters": (big_filters, 20),
           "tokens": (tokens, 1), "replay": (replay, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--kb", default="DEMOKB0001")
    p.add_argument("--seconds", type=int, default=20, help="how long slow clients keep trickling")
    p.add_argument("attacks", nargs="*", default=list(ATTACKS))
    args = p.parse_args()
    host = urllib.parse.urlsplit(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("only loopback servers are attacked")
    base = rss_mib(args.pid)
    print(f"before: RSS {base:.0f} MiB, {open_fds(args.pid)} open files; a signed Retrieve: "
          f"{'ok' if retrieve_ok(args) else 'FAILED'}")
    for name in args.attacks:
        attack, n = ATTACKS[name]
        result = attack(args, n)
        time.sleep(2)
        print(f"{name}: {result}")
        print(f"  after: RSS {rss_mib(args.pid):.0f} MiB, {open_fds(args.pid)} open files; a signed Retrieve: "
              f"{'ok' if retrieve_ok(args) else 'FAILED'}")


if __name__ == "__main__":
    main()
