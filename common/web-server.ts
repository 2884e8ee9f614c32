/**
 * The agent's one HTTP port: the dashboard, `/metrics` and `/health`. It binds to
 * localhost unless told otherwise; off localhost every request needs the token, as a
 * bearer token (Prometheus) or as the password of basic auth (a browser asks for it).
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Answers a request, or returns false to let the next handler try. */
export type RouteHandler = (request: http.IncomingMessage, response: http.ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface WebServerOptions {
  host: string;
  port: number;
  token?: string;
  /** Tried in order; the first that answers wins. */
  handlers: RouteHandler[];
  /** What a 404 lists, so that a wrong path tells where to go. */
  paths: string[];
  /** Overrides of SERVER_TIMEOUTS (the tests shorten them). */
  timeouts?: Partial<ServerTimeouts>;
}

export interface ServerTimeouts {
  /** The whole request, headers and body, must arrive within this (408 otherwise). */
  requestTimeoutMs: number;
  /** The headers must arrive within this; at most requestTimeoutMs. */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** How often the server looks for requests past their timeouts. */
  checkEveryMs: number;
}

/**
 * A slow or stalled sender holds a connection only this long. requestTimeout covers receiving
 * the request, not the response, so an event stream (its GET read at once) lives on for hours.
 * 20 s takes a 256 KiB config body at 13 KB/s.
 */
export const SERVER_TIMEOUTS: ServerTimeouts = { requestTimeoutMs: 20_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000, checkEveryMs: 1_000 };

/** The largest request body a route reads (readBody). */
export const MAX_BODY_BYTES = 256 * 1024;

const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Bearer <token>, or Basic with any user and the token as password. */
export function authorized(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const match = /^\s*(\S+)\s+(\S*)\s*$/.exec(header);
  if (!match) return false;
  const value = match[2]!;
  // Auth schemes are case-insensitive (RFC 7235 §2.1): `bearer` and `BASIC` are the same schemes.
  const scheme = match[1]!.toLowerCase();
  if (scheme === 'bearer') return sameSecret(value, token);
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString();
    return sameSecret(decoded.slice(decoded.indexOf(':') + 1), token);
  }
  return false;
}

/**
 * Whether a Content-Type header names this media type: type/subtype compared whole and
 * case-insensitively, parameters after `;` ignored (`application/jsonp` is not `application/json`).
 */
export function isMediaType(header: string | undefined, expected: string): boolean {
  if (header === undefined) return false;
  const essence = header.split(';', 1)[0]!.trim().toLowerCase();
  return /^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/.test(essence) && essence === expected.toLowerCase();
}

/**
 * The request body, or undefined once it is over `limit` bytes; then a 413 has been sent. The
 * rest of the body is still read and thrown away (up to a bound), so that the client, still
 * sending, sees the 413 rather than a reset from a socket closed with unread data in it.
 */
export function readBody(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  { limit = MAX_BODY_BYTES, reason = `the request body is over ${limit} bytes` }: { limit?: number; reason?: string } = {},
): Promise<Buffer | undefined> {
  const tooLarge = () => {
    sendJson(response, 413, { status: 'error', reason }, { connection: 'close' });
    // Draining is bounded: a client that keeps sending far past the limit is cut off.
    let drained = 0;
    const cutOff = setTimeout(() => request.socket.destroy(), 5_000).unref();
    request.socket.once('close', () => clearTimeout(cutOff));
    request.removeAllListeners('data');
    request.on('data', (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > 16 * limit) request.socket.destroy();
    });
    request.resume();
  };
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length'] ?? NaN);
    if (declared > limit) {
      tooLarge();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        tooLarge();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

export function sendJson(response: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): true {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(`${JSON.stringify(body)}\n`);
  return true;
}

export class WebServer {
  private constructor(private readonly server: http.Server) {}

  static async start(options: WebServerOptions): Promise<WebServer> {
    const timeouts = { ...SERVER_TIMEOUTS, ...options.timeouts };
    const server = http.createServer({ connectionsCheckingInterval: timeouts.checkEveryMs }, (request, response) => {
      void WebServer.handle(options, request, response).catch((error: Error) => {
        if (!response.headersSent) sendJson(response, 500, { error: `edge-exit: ${error.message}` });
        else response.destroy();
      });
    });
    // These bound receiving a request only; an open dashboard's event stream (a GET read at once) still lasts for hours.
    server.requestTimeout = timeouts.requestTimeoutMs;
    server.headersTimeout = Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs);
    server.keepAliveTimeout = timeouts.keepAliveTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'EADDRINUSE' ? new Error(`web: port ${options.port} on ${options.host} is taken: set web.port, or web.enabled false`) : error),
      );
      server.listen(options.port, options.host, () => resolve());
    });
    return new WebServer(server);
  }

  private static async handle(options: WebServerOptions, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (options.token !== undefined && !authorized(request.headers.authorization, options.token)) {
      response
        .writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="edge-exit", charset="UTF-8"' })
        .end('edge-exit: the token is required (web.token): Authorization: Bearer <token>, or basic auth with the token as password\n');
      return;
    }
    // Without a token the port is for this machine only; a page elsewhere that rebinds its own name to 127.0.0.1 still sends its Host.
    if (options.token === undefined && !LOOPBACK_HOST.test(request.headers.host ?? '')) {
      response.writeHead(403, { 'content-type': 'text/plain' }).end('edge-exit: without web.token this port answers only to localhost names (127.0.0.1, localhost, [::1])\n');
      return;
    }
    const url = new URL(request.url ?? '/', 'http://agent');
    for (const handler of options.handlers) {
      if (await handler(request, response, url)) return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end(`edge-exit: no ${url.pathname}; try ${options.paths.join(', ')}\n`);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    // Event streams stay open until closed from this side.
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
