# A lab bulk-transfer tool for either family, run with python3 inside a lab namespace: a
# server that sends a file (GET) or hashes what it receives (PUT), and the matching client,
# which prints one JSON object. Integrity of a transfer through weir's NAT is its sha256;
# the client also reports getpeername() and TCP_MAXSEG (the MSS after any path MTU change).
#
#   python3 bulk-transfer.py serve --port P --file F
#   python3 bulk-transfer.py get --host H --port P [--timeout S]
#   python3 bulk-transfer.py put --host H --port P --file F [--timeout S]

import argparse
import hashlib
import json
import socket
import sys
import time

CHUNK = 1 << 16


def serve(port: int, path: str) -> None:
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind(('::', port))
    ls.listen(16)
    print(f'listening tcp :: {port}', flush=True)
    while True:
        conn, peer = ls.accept()
        with conn:
            f = conn.makefile('rb')
            line = f.readline().decode().strip()
            if line == 'GET':
                with open(path, 'rb') as src:
                    while chunk := src.read(CHUNK):
                        conn.sendall(chunk)
            elif line.startswith('PUT '):
                want = int(line[4:])
                h = hashlib.sha256()
                got = 0
                while got < want:
                    chunk = f.read1(min(CHUNK, want - got))
                    if not chunk:
                        break
                    h.update(chunk)
                    got += len(chunk)
                conn.sendall((json.dumps({'bytes': got, 'sha256': h.hexdigest(), 'peer': peer[0]}) + '\n').encode())
            # the reader holds a reference to the socket: close() alone would send no FIN
            f.close()
            conn.shutdown(socket.SHUT_WR)


def connect(host: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def result(s: socket.socket, started: float, **fields) -> None:
    peer = s.getpeername()
    mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    print(json.dumps({**fields, 'peer': f'{peer[0]}:{peer[1]}', 'mss': mss, 'seconds': time.monotonic() - started}))


def get(host: str, port: int, timeout: float) -> None:
    started = time.monotonic()
    s = connect(host, port, timeout)
    s.sendall(b'GET\n')
    h = hashlib.sha256()
    got = 0
    while chunk := s.recv(CHUNK):
        h.update(chunk)
        got += len(chunk)
    result(s, started, bytes=got, sha256=h.hexdigest())


def put(host: str, port: int, path: str, timeout: float) -> None:
    started = time.monotonic()
    s = connect(host, port, timeout)
    with open(path, 'rb') as src:
        data = src.read()
    s.sendall(f'PUT {len(data)}\n'.encode())
    s.sendall(data)
    reply = s.makefile('rb').readline().decode()
    result(s, started, sent=len(data), sha256=hashlib.sha256(data).hexdigest(), reply=json.loads(reply) if reply else None)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['serve', 'get', 'put'])
    p.add_argument('--host')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--file')
    p.add_argument('--timeout', type=float, default=30)
    a = p.parse_args()
    try:
        if a.mode == 'serve':
            serve(a.port, a.file)
        elif a.mode == 'get':
            get(a.host, a.port, a.timeout)
        else:
            put(a.host, a.port, a.file, a.timeout)
    except OSError as e:
        print(json.dumps({'error': f'{type(e).__name__}: {e}'}))
        sys.exit(1)


if __name__ == '__main__':
    main()
