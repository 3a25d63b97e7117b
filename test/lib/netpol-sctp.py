#!/usr/bin/env python3
# SCTP for the netpol lab agent (test/lib/netpol-agent.ts) on a kernel without SCTP: raw IP
# sockets of protocol 132 carry real SCTP packets (a raw socket receives its protocol whether or
# not a kernel handler exists). The server answers an INIT to one of its ports with an INIT ACK;
# the prober sends INITs and waits for the INIT ACK, so a dropped INIT (a policy) never answers.
# Node has no raw sockets, hence Python (already needed by node-gyp); standard library only.
#
#   python3 netpol-sctp.py serve --ports 80,81
#   python3 netpol-sctp.py probe --timeout-ms 1000 TARGET...   (TARGET = key=host:port)
#   -> one JSON object {key: "ok" | "timeout"}

import argparse
import json
import os
import random
import select
import socket
import struct
import time

SCTP = 132
INIT, INIT_ACK = 1, 2


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def packet(sport: int, dport: int, vtag: int, chunk_type: int, tag: int) -> bytes:
    """An SCTP common header and one INIT / INIT ACK chunk (tag, a_rwnd, streams, TSN)."""
    body = struct.pack('!IIHHI', tag, 65535, 1, 1, tag)
    chunk = struct.pack('!BBH', chunk_type, 0, 4 + len(body)) + body
    hdr = struct.pack('!HHII', sport, dport, vtag, 0)
    # the checksum is little-endian on the wire (RFC 4960 appendix B)
    return hdr[:8] + struct.pack('<I', crc32c(hdr + chunk)) + chunk


def parse(data: bytes):
    """(source address, sport, dport, first chunk type, initiate tag) of a raw IPv4 datagram."""
    ihl = (data[0] & 0x0F) * 4
    src = socket.inet_ntoa(data[12:16])
    sport, dport = struct.unpack('!HH', data[ihl:ihl + 4])
    ctype = data[ihl + 12] if len(data) > ihl + 12 else -1
    tag = struct.unpack('!I', data[ihl + 16:ihl + 20])[0] if len(data) >= ihl + 20 else 0
    return src, sport, dport, ctype, tag


def serve(ports):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, SCTP)
    print('listening sctp', ','.join(map(str, ports)), flush=True)
    while True:
        data, (src, _) = s.recvfrom(65535)
        _, sport, dport, ctype, tag = parse(data)
        if ctype == INIT and dport in ports:
            s.sendto(packet(dport, sport, tag, INIT_ACK, random.getrandbits(32) | 1), (src, 0))


def probe(timeout_ms, targets):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, SCTP)
    pending = {}
    for t in targets:
        key, hostport = t.split('=', 1)
        host, port = hostport.rsplit(':', 1)
        pending[(host, int(port), random.randint(33000, 60000))] = key
    results = {key: 'timeout' for key in pending.values()}
    deadline = time.monotonic() + timeout_ms / 1000
    resend = 0.0
    while pending and time.monotonic() < deadline:
        if time.monotonic() >= resend:
            # each target keeps its source port: one flow, resent as a client retransmits its INIT
            for (host, port, sport) in pending:
                s.sendto(packet(sport, port, 0, INIT, sport), (host, 0))
            resend = time.monotonic() + max(0.1, timeout_ms / 4000)
        ready, _, _ = select.select([s], [], [], max(0.0, min(deadline, resend) - time.monotonic()))
        if not ready:
            continue
        src, sport, dport, ctype, _ = parse(s.recv(65535))
        key = pending.pop((src, sport, dport), None) if ctype == INIT_ACK else None
        if key is not None:
            results[key] = 'ok'
    print(json.dumps(results), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['serve', 'probe'])
    ap.add_argument('--ports', default='80,81')
    ap.add_argument('--timeout-ms', type=int, default=1000)
    ap.add_argument('targets', nargs='*')
    a = ap.parse_intermixed_args()
    if a.mode == 'serve':
        serve({int(p) for p in a.ports.split(',')})
    else:
        probe(a.timeout_ms, a.targets)


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
