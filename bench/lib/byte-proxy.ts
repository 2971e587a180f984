import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A loopback TCP relay in front of one forge port that counts the bytes crossing it, both ways:
 * "bytes on the wire" for fetches and pushes alike, HTTP framing included, the same for refbridge
 * and for the plain-git baselines. Clients use `url(...)` in place of the forge's own origin.
 */
export interface ByteProxy {
  readonly origin: string;
  /** Rewrites a URL on the forge's origin to go through the proxy. */
  url(forgeUrl: string): string;
  /** Bytes client -> forge and forge -> client since the last reset. */
  counts(): { up: number; down: number };
  reset(): void;
  close(): Promise<void>;
}

export async function startByteProxy(forgeOrigin: string): Promise<ByteProxy> {
  const target = new URL(forgeOrigin);
  let up = 0;
  let down = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d: Buffer) => (up += d.length));
    upstream.on('data', (d: Buffer) => (down += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (forgeUrl) => forgeUrl.replace(target.origin, origin),
    counts: () => ({ up, down }),
    reset: () => {
      up = 0;
      down = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
