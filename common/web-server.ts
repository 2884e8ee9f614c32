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
}

const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Bearer <token>, or Basic with any user and the token as password. */
export function authorized(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const [scheme, value = ''] = header.split(' ', 2);
  if (scheme === 'Bearer') return sameSecret(value, token);
  if (scheme === 'Basic') {
    const decoded = Buffer.from(value, 'base64').toString();
    return sameSecret(decoded.slice(decoded.indexOf(':') + 1), token);
  }
  return false;
}

export function sendJson(response: http.ServerResponse, status: number, body: unknown): true {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`);
  return true;
}

export class WebServer {
  private constructor(private readonly server: http.Server) {}

  static async start(options: WebServerOptions): Promise<WebServer> {
    const server = http.createServer((request, response) => {
      void WebServer.handle(options, request, response).catch((error: Error) => {
        if (!response.headersSent) sendJson(response, 500, { error: `edge-exit: ${error.message}` });
        else response.destroy();
      });
    });
    // An open dashboard holds its event stream for hours: no timeout may cut it.
    server.requestTimeout = 0;
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
