/**
 * The live dashboard: a static page (no build step, nothing from the internet), an event
 * stream of the agent's live view, timelines and events from the SQLite log, and a config
 * form whose changes take exactly the config/set path.
 */
import fs from 'node:fs';
import type http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HealthReport } from '../app/health.js';
import { isMediaType, MAX_BODY_BYTES, readBody, sendJson, type RouteHandler } from '../../common/web-server.js';
import type { AgentStatus } from '../pipeline/frame-pipeline.js';
import type { LogReader } from '../store/log-store.js';

/** What the page shows live, sent once a second while a page is open. */
export interface LiveView {
  deviceId: string;
  status: AgentStatus;
  power: { watts?: number; volts?: number; amps?: number; charging?: boolean };
  /** The controller's latest decisions, newest last. */
  decisions: { ts: number; operatingPoint: string; frameRate: number; reason: string }[];
  offload: { enabled: boolean; serversUp?: number; sharePercent: number; roundTripMs?: number };
  gate: { skippedPercent: number };
  /** When the latest snapshot was taken (ms), to fetch it again only when it changed. */
  snapshotAt?: number;
  health: HealthReport;
}

export interface DashboardSources {
  live(): LiveView;
  log: Pick<LogReader, 'telemetryTimeline' | 'events' | 'eventSnapshot'>;
  latestSnapshot(): Buffer | undefined;
  /** The config in force as config/state shows it, and the JSON Schema of what config/set may change. */
  config(): { version: number; config: unknown; schema: unknown };
  /** A config/set payload, handled as one from MQTT; returns the config/response payload. */
  applyConfig(body: Buffer): Buffer;
}

const STATIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');
const require = createRequire(import.meta.url);
const UPLOT_DIR = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
const LIVE_EVERY_MS = 1000;
const MAX_TIMELINE_BUCKETS = 2000;
/** The shortest window a fitted timeline shows: a run seconds old still gets a readable axis. */
const FIT_MIN_SPAN_MS = 60_000;

/** Read once: the page is a few tens of KiB. */
function staticFiles(): Map<string, { body: Buffer; type: string }> {
  const file = (name: string, dir: string, type: string) => ({ body: fs.readFileSync(path.join(dir, name)), type });
  return new Map([
    ['/', file('index.html', STATIC_DIR, 'text/html; charset=utf-8')],
    ['/dashboard.js', file('dashboard.js', STATIC_DIR, 'text/javascript; charset=utf-8')],
    ['/dashboard.css', file('dashboard.css', STATIC_DIR, 'text/css; charset=utf-8')],
    ['/vendor/uPlot.iife.min.js', file('uPlot.iife.min.js', UPLOT_DIR, 'text/javascript; charset=utf-8')],
    ['/vendor/uPlot.min.css', file('uPlot.min.css', UPLOT_DIR, 'text/css; charset=utf-8')],
  ]);
}

function numberParam(url: URL, name: string): number | undefined {
  const value = url.searchParams.get(name);
  if (value === null || value === '') return undefined;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : undefined;
}

/** How the event stream treats a page that does not read. */
export interface StreamLimits {
  everyMs: number;
  /** A page whose buffer has not drained for this long is closed (it reconnects, as EventSource does). */
  blockedCloseMs: number;
}

const STREAM_LIMITS: StreamLimits = { everyMs: LIVE_EVERY_MS, blockedCloseMs: 30_000 };

export class DashboardRoutes {
  private readonly files = staticFiles();
  /** Each open page, with when its writes last filled the buffer (undefined while it reads). */
  private readonly streams = new Map<http.ServerResponse, { blockedSince?: number }>();
  private ticker: NodeJS.Timeout | undefined;
  private readonly limits: StreamLimits;

  constructor(
    private readonly sources: DashboardSources,
    limits: Partial<StreamLimits> = {},
  ) {
    this.limits = { ...STREAM_LIMITS, ...limits };
  }

  /** Pages open now (the overhead benchmark and the tests read it). */
  get openStreams(): number {
    return this.streams.size;
  }

  readonly handler: RouteHandler = async (request, response, url) => {
    const route = url.pathname;
    const file = request.method === 'GET' ? this.files.get(route) : undefined;
    if (file) {
      response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' }).end(file.body);
      return true;
    }
    if (route === '/favicon.ico') {
      response.writeHead(204).end();
      return true;
    }
    if (route === '/api/live') return this.openStream(response);
    if (route === '/api/timeline') return this.timeline(response, url);
    if (route === '/api/events') {
      const limit = Math.min(200, Math.max(1, numberParam(url, 'limit') ?? 20));
      const events = this.sources.log.events({}, limit).reverse();
      return sendJson(response, 200, events.map(({ snapshot, ...event }) => ({ ...event, hasSnapshot: snapshot !== null })));
    }
    const eventSnapshot = route.match(/^\/api\/events\/([A-Za-z0-9_.:-]{1,128})\/snapshot\.jpg$/);
    if (eventSnapshot) return this.jpeg(response, this.sources.log.eventSnapshot(eventSnapshot[1]!), `event ${eventSnapshot[1]} has no snapshot`);
    if (route === '/api/snapshot.jpg') return this.jpeg(response, this.sources.latestSnapshot(), 'no snapshot yet: one is taken when an event starts');
    if (route === '/api/config' && request.method === 'GET') return sendJson(response, 200, this.sources.config());
    if (route === '/api/config' && request.method === 'POST') return this.configSet(request, response);
    return false;
  };

  private jpeg(response: http.ServerResponse, jpeg: Buffer | undefined, missing: string): true {
    if (!jpeg) return sendJson(response, 404, { error: missing });
    response.writeHead(200, { 'content-type': 'image/jpeg', 'cache-control': 'no-store' }).end(jpeg);
    return true;
  }

  /**
   * Timelines of [from, to). With fit=1 the window starts at the first data point in it instead
   * (a fresh run fills the chart rather than its last minutes), at least FIT_MIN_SPAN_MS long;
   * the answer's `from` says where it starts.
   */
  private timeline(response: http.ServerResponse, url: URL): true {
    const to = numberParam(url, 'to') ?? Date.now();
    let from = numberParam(url, 'from') ?? to - 3_600_000;
    if (!(from < to)) return sendJson(response, 400, { error: `timeline: from (${from}) must be before to (${to}), both in ms since the epoch` });
    const buckets = Math.min(MAX_TIMELINE_BUCKETS, Math.max(1, Math.trunc(numberParam(url, 'buckets') ?? 300)));
    const log = this.sources.log;
    const events = log.events({ from, to }, 500).map(({ snapshot, ...event }) => ({ ...event, hasSnapshot: snapshot !== null }));
    let points = log.telemetryTimeline({ from, to }, buckets);
    const first = () => Math.min(points[0]?.ts ?? to, events[0]?.start ?? to);
    if (url.searchParams.get('fit') === '1' && first() < to) {
      // A point is its bucket's latest row, so the first row is at most a bucket earlier: ask again from
      // there, in finer buckets, and start where the first of those is.
      const start = Math.max(from, Math.min(first() - (to - from) / buckets, to - FIT_MIN_SPAN_MS));
      if (start > from) {
        points = log.telemetryTimeline({ from: start, to }, buckets);
        from = Math.max(start, Math.min(first(), to - FIT_MIN_SPAN_MS));
      }
    }
    return sendJson(response, 200, { from, to, points, events });
  }

  private async configSet(request: http.IncomingMessage, response: http.ServerResponse): Promise<true> {
    // A JSON body cannot come from a plain cross-site form: another page in the operator's browser cannot change the config.
    if (!isMediaType(request.headers['content-type'], 'application/json')) {
      return sendJson(response, 415, { status: 'error', reason: 'config: send the change as application/json, {"id": "...", "set": {...}} as on config/set' });
    }
    // Over the limit, readBody has answered 413 and drains the rest.
    const body = await readBody(request, response, { reason: `config: the change is over ${MAX_BODY_BYTES} bytes` });
    if (body === undefined) return true;
    const answer = JSON.parse(this.sources.applyConfig(body).toString()) as { status: string };
    return sendJson(response, answer.status === 'ok' ? 200 : 422, answer);
  }

  private openStream(response: http.ServerResponse): true {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    this.streams.set(response, {});
    response.on('close', () => {
      this.streams.delete(response);
      if (this.streams.size === 0) this.stopTicker();
    });
    this.send([response]);
    // The live view is built only while someone watches: a closed dashboard costs the loop nothing.
    this.ticker ??= setInterval(() => this.send([...this.streams.keys()]), this.limits.everyMs);
    return true;
  }

  private send(streams: http.ServerResponse[]): void {
    if (streams.length === 0) return;
    const message = `data: ${JSON.stringify(this.sources.live())}\n\n`;
    const now = Date.now();
    for (const stream of streams) {
      const state = this.streams.get(stream);
      if (!state) continue;
      // A page that does not read would otherwise buffer every update in memory: while its buffer is full
      // it misses updates (the next one it gets is whole and current), and one blocked too long is closed.
      if (state.blockedSince !== undefined) {
        if (now - state.blockedSince >= this.limits.blockedCloseMs) stream.destroy();
        continue;
      }
      if (!stream.write(message)) {
        state.blockedSince = now;
        stream.once('drain', () => (state.blockedSince = undefined));
      }
    }
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  close(): void {
    this.stopTicker();
    for (const stream of this.streams.keys()) stream.end();
    this.streams.clear();
  }
}
