/**
 * The agent's HTTP endpoint for monitoring: `/metrics` in Prometheus' text format (as
 * Frigate's `/api/metrics`), and `/health` for a watchdog or a load balancer. It binds to
 * localhost unless told otherwise, and off localhost it asks for a bearer token.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { AgentStatus } from '../pipeline/edge-agent.js';

export interface HealthReport {
  /** ok: frames are flowing and nothing fails; degraded: running with a part failing; stalled: no frame for a while. */
  status: 'ok' | 'degraded' | 'stalled';
  checks: { frames: string; log: string; mqtt: string };
}

export interface MetricsSources {
  status(): AgentStatus;
  /** "ok", or why the log fails. */
  logHealth(): string;
  /** undefined while the MQTT link works, else what is wrong. */
  mqttProblem(): string | undefined;
  mqttConnected(): boolean;
  /** Milliseconds since the last frame (classified or let stand by the gate). */
  sinceLastFrameMs(): number;
}

/** No frame for this long and the agent says it is stalled (a camera that died, a loop stuck). */
const STALLED_AFTER_MS = 60_000;

export function healthReport(sources: MetricsSources): HealthReport {
  const since = sources.sinceLastFrameMs();
  const log = sources.logHealth();
  const mqtt = sources.mqttProblem() ?? (sources.mqttConnected() ? 'connected' : 'not connected (the agent goes on and retries)');
  const stalled = since > STALLED_AFTER_MS;
  const degraded = log !== 'ok' || sources.mqttProblem() !== undefined;
  return {
    status: stalled ? 'stalled' : degraded ? 'degraded' : 'ok',
    checks: { frames: Number.isFinite(since) ? `last frame ${(since / 1000).toFixed(1)} s ago` : 'no frame yet', log, mqtt },
  };
}

export class MetricsServer {
  private readonly registry = new Registry();
  private readonly server: http.Server;

  private constructor(
    private readonly sources: MetricsSources,
    private readonly token: string | undefined,
  ) {
    const registry = this.registry;
    // Counters are read from the pipeline's own totals at scrape time: nothing runs per frame.
    const totals = (name: string, help: string, read: (status: AgentStatus) => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read(sources.status()));
        },
      });
    totals('edge_exit_frames_total', 'Frames the model ran on', (s) => s.frames);
    totals('edge_exit_gated_frames_total', 'Frames the motion gate let stand without inference', (s) => s.gated);
    totals('edge_exit_offloaded_frames_total', 'Frames offloaded to the server', (s) => s.offloaded);
    totals('edge_exit_skipped_frames_total', 'Frames that could not be decoded', (s) => s.skipped);
    totals('edge_exit_dropped_frames_total', 'Stream frames a newer one replaced before the agent took them', (s) => s.dropped);
    new Counter({
      name: 'edge_exit_exit_frames_total',
      help: 'Frames by the exit they left at',
      labelNames: ['exit'],
      registers: [registry],
      collect() {
        this.reset();
        sources.status().exitHistogram.forEach((count, exit) => this.inc({ exit: String(exit) }, count));
      },
    });
    const gauge = (name: string, help: string, read: (status: AgentStatus) => number | undefined) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          const value = read(sources.status());
          if (value === undefined) this.reset();
          else this.set(value);
        },
      });
    gauge('edge_exit_frames_per_second', 'Frames classified per second, recently', (s) => s.framesPerSecond);
    gauge('edge_exit_battery_ratio', 'Battery state of charge (0-1)', (s) => s.stateOfCharge);
    gauge('edge_exit_temperature_celsius', 'Hottest temperature sensor', (s) => s.temperatureC);
    gauge('edge_exit_latency_p95_seconds', 'Capture to result, 95th percentile over the latest frames', (s) => (s.latencyMs ? s.latencyMs.p95 / 1000 : undefined));
    gauge('edge_exit_mqtt_connected', 'Whether the MQTT link is up (1) or not (0)', () => (sources.mqttConnected() ? 1 : 0));
    gauge('edge_exit_log_ok', 'Whether the SQLite log writes (1) or fails (0)', () => (sources.logHealth() === 'ok' ? 1 : 0));
    new Gauge({
      name: 'edge_exit_operating_point_info',
      help: 'The operating point in use (the label), always 1',
      labelNames: ['point'],
      registers: [registry],
      collect() {
        this.reset();
        this.set({ point: sources.status().operatingPoint }, 1);
      },
    });
    this.server = http.createServer((request, response) => void this.handle(request, response));
  }

  static async start(sources: MetricsSources, options: { host: string; port: number; token?: string }): Promise<MetricsServer> {
    const server = new MetricsServer(sources, options.token);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'EADDRINUSE' ? new Error(`metrics: port ${options.port} on ${options.host} is taken: set metrics.port, or metrics.enabled false`) : error),
      );
      server.server.listen(options.port, options.host, () => resolve());
    });
    return server;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (this.token !== undefined && request.headers.authorization !== `Bearer ${this.token}`) {
      response.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' }).end('a bearer token is required (metrics.token)\n');
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      response.writeHead(200, { 'content-type': this.registry.contentType }).end(await this.registry.metrics());
      return;
    }
    if (path === '/health') {
      const report = healthReport(this.sources);
      response.writeHead(report.status === 'stalled' ? 503 : 200, { 'content-type': 'application/json' }).end(`${JSON.stringify(report)}\n`);
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('edge-exit: /metrics (Prometheus) and /health\n');
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
