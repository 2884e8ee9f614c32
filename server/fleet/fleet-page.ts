/**
 * `edge-exit server --web-port`: the fleet page (every gateway on the broker and every
 * offload worker), /api/fleet as JSON, and /metrics for Prometheus, on one port that
 * binds to localhost unless a token guards it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gauge, Registry } from 'prom-client';
import { sendJson, WebServer, type RouteHandler } from '../../common/web-server.js';
import type { AgentConfig } from '../../agent/config/agent-config.js';
import { FleetWatcher, type FleetSnapshot } from './fleet-watcher.js';

const STATIC_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'static');

export interface FleetPageOptions {
  host: string;
  port: number;
  token?: string;
  brokerUrl: string;
  prefix: string;
  mqtt: AgentConfig['mqtt'];
}

function fleetMetrics(snapshot: () => FleetSnapshot): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, fleet: FleetSnapshot) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this, snapshot());
      },
    });
  gauge('edge_exit_fleet_gateways', 'Gateways known on the broker, by availability', ['availability'], (g, fleet) => {
    g.set({ availability: 'online' }, fleet.gateways.filter((x) => x.online === true).length);
    g.set({ availability: 'offline' }, fleet.gateways.filter((x) => x.online === false).length);
  });
  gauge('edge_exit_server_answered', 'Offload requests answered, per worker, since it started', ['worker'], (g, fleet) => fleet.workers.forEach((w) => g.set({ worker: w.serverId }, w.answered)));
  gauge('edge_exit_server_refused', 'Offload requests refused, per worker, since it started', ['worker'], (g, fleet) => fleet.workers.forEach((w) => g.set({ worker: w.serverId }, w.rejected)));
  gauge('edge_exit_fleet_broker_connected', 'Whether the fleet view is connected to the broker', [], (g, fleet) => g.set(fleet.connected ? 1 : 0));
  return registry;
}

export class FleetPage {
  private constructor(
    private readonly watcher: FleetWatcher,
    private readonly server: WebServer,
  ) {}

  static async start(options: FleetPageOptions): Promise<FleetPage> {
    const watcher = await FleetWatcher.start(options);
    const files = new Map([
      ['/', { body: fs.readFileSync(path.join(STATIC_DIR, 'fleet.html')), type: 'text/html; charset=utf-8' }],
      ['/fleet.js', { body: fs.readFileSync(path.join(STATIC_DIR, 'fleet.js')), type: 'text/javascript; charset=utf-8' }],
    ]);
    const metrics = fleetMetrics(() => watcher.snapshot());
    const routes: RouteHandler = async (request, response, url) => {
      const file = files.get(url.pathname);
      if (file && request.method === 'GET') {
        response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' }).end(file.body);
        return true;
      }
      if (url.pathname === '/api/fleet') return sendJson(response, 200, watcher.snapshot());
      if (url.pathname === '/metrics') {
        response.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.metrics());
        return true;
      }
      if (url.pathname === '/health' || url.pathname === '/healthz') {
        const connected = watcher.snapshot().connected;
        return sendJson(response, connected ? 200 : 503, { status: connected ? 'ok' : 'not connected to the broker' });
      }
      return false;
    };
    try {
      const server = await WebServer.start({ host: options.host, port: options.port, token: options.token, handlers: [routes], paths: ['/ (the fleet)', '/api/fleet', '/metrics', '/health'] });
      return new FleetPage(watcher, server);
    } catch (error) {
      await watcher.close();
      throw error;
    }
  }

  get port(): number {
    return this.server.port;
  }

  async close(): Promise<void> {
    await this.server.close();
    await this.watcher.close();
  }
}
