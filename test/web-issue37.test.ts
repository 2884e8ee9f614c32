import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { DashboardRoutes, type DashboardSources } from '../agent/dashboard/dashboard-routes.js';
import { WebServer, type WebServerOptions } from '../common/web-server.js';

/*
 * Issue 37, the web port (items 7 to 11): the real WebServer with the real dashboard routes on
 * 127.0.0.1, driven over sockets by node:http and raw net clients. The sources are stand-ins.
 * Serial: the timing checks should not share the two cores with the backpressure one.
 */

const TOKEN = 'issue37-token';

function sources(live: () => unknown = () => ({ deviceId: 'gw' })): DashboardSources {
  return {
    live: live as DashboardSources['live'],
    log: { telemetryTimeline: () => [], events: () => [], eventSnapshot: () => undefined },
    latestSnapshot: () => undefined,
    config: () => ({ version: 1, config: {}, schema: {} }),
    applyConfig: () => Buffer.from(JSON.stringify({ status: 'ok' })),
  };
}

async function start(
  options: { token?: string; timeouts?: WebServerOptions['timeouts']; live?: () => unknown; limits?: { everyMs?: number; blockedCloseMs?: number } } = {},
) {
  // The second argument is the stream limits (an unknown extra argument before the fix).
  const routes = new (DashboardRoutes as unknown as new (s: DashboardSources, l?: object) => DashboardRoutes)(sources(options.live), options.limits);
  const server = await WebServer.start({ host: '127.0.0.1', port: 0, token: options.token, handlers: [routes.handler], paths: ['/'], timeouts: options.timeouts });
  return { routes, server, close: async () => (routes.close(), await server.close()) };
}

interface Answer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function request(port: number, options: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | Buffer[] }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/api/config', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const parts = options.body === undefined ? [] : Array.isArray(options.body) ? options.body : [options.body];
    for (const part of parts) req.write(part);
    req.end();
  });
}

/** A raw connection: what it received, and when it was closed (by the server, as the client never closes it). */
function rawClient(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  const state = { received: '', closedAt: undefined as number | undefined, socket };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (state.received += chunk));
  socket.on('error', () => {});
  socket.on('close', () => (state.closedAt = Date.now()));
  return state;
}

test.serial('7: auth schemes are case-insensitive (RFC 7235): bearer, BEARER, basic and BASIC all pass with the token', async (t) => {
  const { server, close } = await start({ token: TOKEN });
  try {
    const basic = Buffer.from(`anyone:${TOKEN}`).toString('base64');
    for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Basic ${basic}`, `basic ${basic}`, `BASIC ${basic}`]) {
      t.is((await request(server.port, { headers: { authorization } })).status, 200, authorization);
    }
    for (const authorization of [undefined, `bearer wrong`, `BASIC ${Buffer.from('anyone:wrong').toString('base64')}`, `Token ${TOKEN}`, TOKEN]) {
      const headers = authorization === undefined ? {} : { authorization };
      t.is((await request(server.port, { headers })).status, 401, String(authorization));
    }
  } finally {
    await close();
  }
});

test.serial('8: a POST over 256 KiB gets a 413 with a clear body, not a reset, with or without a Content-Length', async (t) => {
  const { server, close } = await start();
  try {
    const big = Buffer.alloc(300 * 1024, 0x20);
    const headers = { host: '127.0.0.1', 'content-type': 'application/json' };
    // Declared up front.
    const declared = await request(server.port, { method: 'POST', headers: { ...headers, 'content-length': big.length }, body: big });
    t.is(declared.status, 413);
    t.regex(declared.body, /config: the change is over 262144 bytes/);
    t.is(declared.headers.connection, 'close');
    // Chunked: found out while reading, in 16 KiB pieces.
    const pieces = Array.from({ length: 20 }, (_, i) => big.subarray(i * 16 * 1024, (i + 1) * 16 * 1024));
    const chunked = await request(server.port, { method: 'POST', headers, body: pieces });
    t.is(chunked.status, 413);
    t.regex(chunked.body, /over 262144 bytes/);
    // A body under the limit still goes through.
    const small = await request(server.port, { method: 'POST', headers, body: Buffer.from(JSON.stringify({ id: 'a', set: {} })) });
    t.is(small.status, 200);
  } finally {
    await close();
  }
});

test.serial('9: slow senders are cut off (408) by the request and header timeouts, while an event stream lives on', async (t) => {
  const timeouts = { requestTimeoutMs: 1500, headersTimeoutMs: 1000, keepAliveTimeoutMs: 500, checkEveryMs: 200 };
  const { server, routes, close } = await start({ timeouts, limits: { everyMs: 200 } });
  try {
    // A stream opened first, read throughout, well past the request timeout.
    let events = 0;
    let streamClosed = false;
    const live = http.get({ host: '127.0.0.1', port: server.port, path: '/api/live', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (events += chunk.split('\n\n').length - 1));
      res.on('close', () => (streamClosed = true));
    });
    live.on('error', () => {});

    const startedAt = Date.now();
    const slowBodies = Array.from({ length: 50 }, () => rawClient(server.port));
    for (const client of slowBodies) client.socket.write('POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
    const slowHeaders = Array.from({ length: 10 }, () => rawClient(server.port));
    for (const client of slowHeaders) client.socket.write('GET /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // A byte every 300 ms: never idle, never done.
    const drip = setInterval(() => {
      for (const client of slowBodies) if (client.closedAt === undefined) client.socket.write(' ');
      for (const client of slowHeaders) if (client.closedAt === undefined) client.socket.write('X');
    }, 300);
    await sleep(4000);
    clearInterval(drip);

    const open = [...slowBodies, ...slowHeaders].filter((client) => client.closedAt === undefined).length;
    t.is(open, 0, `${open} of 60 slow connections still open after 4 s`);
    for (const client of slowBodies) {
      t.regex(client.received, /^HTTP\/1\.1 408/);
      t.true(client.closedAt! - startedAt < 1500 + 1000, 'closed near requestTimeout');
    }
    t.false(streamClosed, 'the event stream outlives the request timeout');
    t.is(routes.openStreams, 1);
    t.true(events >= 10, `${events} events in 4 s at one per 200 ms`);
    live.destroy();
  } finally {
    await close();
  }
});

test.serial('10: the content type is parsed as a media type: application/jsonp and the like are refused, parameters and case are fine', async (t) => {
  const { server, close } = await start();
  try {
    const body = Buffer.from(JSON.stringify({ id: 'x', set: {} }));
    const post = async (type: string | undefined) =>
      (await request(server.port, { method: 'POST', headers: { host: '127.0.0.1', ...(type === undefined ? {} : { 'content-type': type }) }, body })).status;
    for (const type of ['application/jsonp', 'application/json-patch+json', 'application/jsonx; charset=utf-8', 'text/plain', 'application/json/x', 'application', undefined]) {
      t.is(await post(type), 415, String(type));
    }
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/json ;charset=UTF-8']) {
      t.is(await post(type), 200, type);
    }
  } finally {
    await close();
  }
});

test.serial('11: event streams to pages that never read buffer a bounded amount, are closed when blocked too long, and readers still get updates', async (t) => {
  // Updates of 100 KiB, 50 a second: 5 MB/s for each page.
  const pad = 'x'.repeat(100 * 1024);
  let n = 0;
  const { server, routes, close } = await start({ live: () => ({ deviceId: 'gw', n: n++, pad }), limits: { blockedCloseMs: 2500 } });
  const streams = () => [...(routes['streams'] as unknown as { keys(): Iterable<http.ServerResponse> }).keys()];
  // The ticker sends once a second; the test sends 50 times a second besides, through the same send().
  const pump = setInterval(() => (routes['send'] as (streams: http.ServerResponse[]) => void).call(routes, streams()), 20);
  try {
    let received = 0;
    const reader = http.get({ host: '127.0.0.1', port: server.port, path: '/api/live', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (received += chunk.split('\n\n').length - 1));
    });
    reader.on('error', () => {});
    // Pages that ask and then never read: paused sockets, so the kernel buffers fill and stay full.
    const stalled = Array.from({ length: 8 }, () => {
      const client = rawClient(server.port);
      client.socket.write('GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      client.socket.pause();
      return client;
    });
    let maxBuffered = 0;
    for (let i = 0; i < 20; i++) {
      await sleep(100);
      for (const stream of streams()) maxBuffered = Math.max(maxBuffered, stream.writableLength);
    }
    // 2 s at 5 MB/s is 10 MB a page without backpressure; with it, about one update over the high-water mark.
    t.true(maxBuffered < 1024 * 1024, `a page's buffer reached ${maxBuffered} bytes (${n} updates sent)`);
    const before = received;
    t.true(before > 20, `the reading page got ${before} updates in 2 s`);
    // Blocked for blockedCloseMs: the stalled pages are closed, the reader stays.
    const deadline = Date.now() + 6000;
    while (routes.openStreams > 1 && Date.now() < deadline) await sleep(100);
    t.is(routes.openStreams, 1, 'only the reading page is left');
    const at = received;
    await sleep(500);
    t.true(received > at, 'the reader still gets updates');
    reader.destroy();
    for (const client of stalled) client.socket.destroy();
  } finally {
    clearInterval(pump);
    await close();
  }
});
