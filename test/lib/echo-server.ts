// A lab backend that tells the client who it is and which peer address it sees, over TCP
// (raw lines or HTTP) and UDP; plus the matching client. Run with plain `node` inside a lab
// namespace (no imports beyond node:), so service tests can check NAT and load balancing.
//
//   node echo-server.js serve --name NAME --port P [--bind ADDR] [--tcp] [--udp]
//   node echo-server.js ask --proto tcp|udp --host H --port P [--bind ADDR] [--timeout MS] [--message M]
//
// Every reply is one JSON object (an EchoReply); `ask` prints one EchoAnswer.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, isIPv6 } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface EchoReply {
  /** the server's identity (--name) */
  server: string;
  proto: 'tcp' | 'udp' | 'http';
  /** the client address as the server sees it */
  peer: string;
  peerPort: number;
  /** the server's own address of this connection / datagram (UDP: the bound address) */
  local: string;
  localPort: number;
  /** what the client sent, without the trailing newline */
  echo: string;
}

export interface EchoAnswer {
  reply: EchoReply;
  /** the client's view of its socket: for TCP getsockname/getpeername, for UDP the reply's sender */
  client: { local: string; localPort: number; remote: string; remotePort: number };
  ms: number;
}

/** v4-mapped IPv6 addresses from dual-stack sockets, shown as the IPv4 address they are. */
export function plainAddress(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function serve(name: string, port: number, bind: string, tcp: boolean, udp: boolean): void {
  if (tcp) {
    const server = createServer((sock) => {
      let first = true;
      sock.on('error', () => {});
      sock.on('data', (buf) => {
        const text = buf.toString('utf8');
        const isHttp = first && /^[A-Z]+ \S+ HTTP\/1\.[01]\r?\n/.test(text);
        first = false;
        const reply: EchoReply = {
          server: name,
          proto: isHttp ? 'http' : 'tcp',
          peer: plainAddress(sock.remoteAddress),
          peerPort: sock.remotePort ?? 0,
          local: plainAddress(sock.localAddress),
          localPort: sock.localPort ?? 0,
          echo: isHttp ? text.split(/\r?\n/)[0]! : text.replace(/\r?\n$/, ''),
        };
        if (isHttp) {
          const body = JSON.stringify(reply) + '\n';
          sock.end(
            `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
              `X-Echo-Server: ${name}\r\nConnection: close\r\n\r\n${body}`,
          );
        } else {
          sock.write(JSON.stringify(reply) + '\n');
        }
      });
    });
    server.listen({ port, host: bind, ipv6Only: false }, () => console.log(`listening tcp ${bind} ${port}`));
  }
  if (udp) {
    const sock = createSocket({ type: isIPv6(bind) ? 'udp6' : 'udp4', ipv6Only: false });
    sock.on('message', (buf, rinfo) => {
      const reply: EchoReply = {
        server: name,
        proto: 'udp',
        peer: plainAddress(rinfo.address),
        peerPort: rinfo.port,
        local: plainAddress(sock.address().address),
        localPort: sock.address().port,
        echo: buf.toString('utf8').replace(/\r?\n$/, ''),
      };
      sock.send(JSON.stringify(reply) + '\n', rinfo.port, rinfo.address);
    });
    sock.bind(port, bind, () => console.log(`listening udp ${bind} ${port}`));
  }
}

function ask(proto: string, host: string, port: number, bind: string | undefined, timeoutMs: number, message: string): void {
  const started = Date.now();
  const fail = (why: string) => {
    process.stderr.write(`echo ${proto} ${host}:${port}: ${why}\n`);
    process.exit(why.startsWith('timeout') ? 2 : 1);
  };
  setTimeout(() => fail(`timeout after ${timeoutMs} ms`), timeoutMs).unref();
  const finish = (line: string, client: EchoAnswer['client']) => {
    let reply: EchoReply;
    try {
      reply = JSON.parse(line) as EchoReply;
    } catch {
      return fail(`not an echo reply: ${JSON.stringify(line)}`);
    }
    const answer: EchoAnswer = { reply, client, ms: Date.now() - started };
    process.stdout.write(JSON.stringify(answer) + '\n', () => process.exit(0));
  };
  if (proto === 'tcp') {
    const sock = connect({ host, port, ...(bind ? { localAddress: bind } : {}) });
    let buf = '';
    sock.on('error', (e) => fail(e.message));
    sock.on('connect', () => sock.write(message + '\n'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const client = {
        local: plainAddress(sock.localAddress),
        localPort: sock.localPort ?? 0,
        remote: plainAddress(sock.remoteAddress),
        remotePort: sock.remotePort ?? 0,
      };
      sock.destroy();
      finish(buf.slice(0, nl), client);
    });
    sock.on('end', () => fail('connection closed without a reply'));
  } else if (proto === 'udp') {
    const sock: UdpSocket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    sock.on('error', (e) => fail(e.message));
    sock.on('message', (d, rinfo) => {
      const client = {
        local: plainAddress(sock.address().address),
        localPort: sock.address().port,
        remote: plainAddress(rinfo.address),
        remotePort: rinfo.port,
      };
      finish(d.toString('utf8').split('\n')[0]!, client);
    });
    const send = () => sock.send(message + '\n', port, host, (e) => e && fail(e.message));
    sock.bind(0, bind, () => {
      send();
      // UDP may lose the first datagram (e.g. while neighbours resolve): resend a few times
      const again = setInterval(send, Math.max(100, Math.floor(timeoutMs / 5)));
      again.unref();
    });
  } else {
    fail(`unknown protocol ${proto}`);
  }
}

function main(): void {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string', default: 'echo' },
      port: { type: 'string', default: '7000' },
      bind: { type: 'string' },
      tcp: { type: 'boolean', default: false },
      udp: { type: 'boolean', default: false },
      proto: { type: 'string', default: 'tcp' },
      host: { type: 'string' },
      timeout: { type: 'string', default: '2000' },
      message: { type: 'string', default: 'hello' },
    },
  });
  const port = Number(values.port);
  if (positionals[0] === 'serve') {
    const both = !values.tcp && !values.udp;
    serve(values.name!, port, values.bind ?? '::', both || values.tcp!, both || values.udp!);
  } else if (positionals[0] === 'ask') {
    if (!values.host) throw new Error('ask needs --host');
    ask(values.proto!, values.host, port, values.bind, Number(values.timeout), values.message!);
  } else {
    console.error('usage: echo-server.js serve|ask [options]');
    process.exit(64);
  }
}

// run only as a script, so that lab code can import the types
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
