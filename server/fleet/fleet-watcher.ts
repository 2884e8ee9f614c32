/**
 * The fleet as the broker shows it: every gateway's availability, telemetry, state and
 * events, and every server worker's availability and load, kept up to date from the
 * topics they publish anyway. Gateways come and go as their availability says.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { type AgentConfig, redactUrl } from '../../agent/config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import { brokerConnectOptions } from '../../agent/mqtt/connect-options.js';
import { eventMessageSchema, stateSchema, telemetrySchema } from '../../agent/mqtt/payloads.js';
import { AVAILABILITY_ONLINE, deviceIdProblem, serverIdProblem } from '../../agent/mqtt/topics.js';

export interface GatewayView {
  deviceId: string;
  /** undefined until its availability is known. */
  online: boolean | undefined;
  /** When anything was last heard from it (ms). */
  lastSeen: number;
  battery?: number | null;
  temperatureC?: number | null;
  framesPerSecond?: number;
  operatingPoint?: string;
  /** Frames it offloaded per minute, from its latest telemetry. */
  offloadedPerMinute?: number;
  state?: { label: string; confidence: number; decidedBy: string; at: number };
  lastEvent?: { label: string; confidence: number; start: number; end: number | null };
}

export interface WorkerView {
  serverId: string;
  online: boolean;
  answered: number;
  rejected: number;
  /** Answers per minute between its latest two load messages. */
  answeredPerMinute?: number;
  lastSeen: number;
}

export interface FleetSnapshot {
  at: number;
  connected: boolean;
  gateways: GatewayView[];
  workers: WorkerView[];
}

function json(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

export class FleetWatcher {
  private readonly gateways = new Map<string, GatewayView>();
  private readonly workers = new Map<string, WorkerView>();
  private readonly lastTelemetryAt = new Map<string, number>();
  private readonly lastLoadAt = new Map<string, number>();

  private constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
  ) {
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /** Subscribes under the prefix; the broker's retained messages fill the view at once. */
  static async start(options: { brokerUrl: string; prefix: string; mqtt: AgentConfig['mqtt'] }): Promise<FleetWatcher> {
    const client = mqtt.connect(options.brokerUrl, { ...brokerConnectOptions(options.mqtt), clean: true, reconnectPeriod: 2000 });
    const watcher = new FleetWatcher(client, options.prefix);
    const p = options.prefix;
    const filters = [`${p}/+/availability`, `${p}/+/telemetry`, `${p}/+/state`, `${p}/+/events`, `${p}/servers/+/availability`, `${p}/servers/+/load`];
    // Renewed on every connect: a clean session forgets them.
    client.on('connect', () => {
      client.subscribe(filters, { qos: 0 }, (error, granted) => {
        const denied = (granted ?? []).filter((grant) => grant.qos === 128).map((grant) => grant.topic);
        if (error || denied.length > 0) logger.warn(`fleet: the broker refused ${denied.join(', ') || error?.message}: the server's login needs read access to them (deploy/mosquitto/edge-exit.acl)`);
      });
    });
    client.on('error', (error) => logger.warn(`fleet: ${redactUrl(options.brokerUrl)}: ${error.message}`));
    return watcher;
  }

  private gateway(deviceId: string): GatewayView {
    let view = this.gateways.get(deviceId);
    if (!view) {
      view = { deviceId, online: undefined, lastSeen: Date.now() };
      this.gateways.set(deviceId, view);
    }
    view.lastSeen = Date.now();
    return view;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const levels = topic.slice(this.prefix.length + 1).split('/');
    if (levels[0] === 'servers' && levels.length === 3) return this.onWorker(levels[1]!, levels[2]!, payload);
    if (levels.length !== 2 || deviceIdProblem(levels[0]) !== undefined) return;
    const [deviceId, kind] = levels as [string, string];
    if (kind === 'availability') {
      // An emptied retained availability: the gateway was removed.
      if (payload.length === 0) this.gateways.delete(deviceId);
      else this.gateway(deviceId).online = payload.toString() === AVAILABILITY_ONLINE;
      return;
    }
    const view = this.gateway(deviceId);
    if (kind === 'telemetry') {
      const parsed = telemetrySchema.safeParse(json(payload));
      if (!parsed.success) return;
      const t = parsed.data;
      const previous = this.lastTelemetryAt.get(deviceId);
      this.lastTelemetryAt.set(deviceId, t.ts);
      Object.assign(view, { battery: t.battery, temperatureC: t.temperatureC, framesPerSecond: t.framesPerSecond, operatingPoint: t.operatingPoint });
      if (previous !== undefined && t.ts > previous && t.offloaded !== undefined) view.offloadedPerMinute = (t.offloaded * 60_000) / (t.ts - previous);
    } else if (kind === 'state') {
      const parsed = stateSchema.safeParse(json(payload));
      if (parsed.success) view.state = { label: parsed.data.label, confidence: parsed.data.confidence, decidedBy: parsed.data.decidedBy, at: parsed.data.at };
    } else if (kind === 'events') {
      const parsed = eventMessageSchema.safeParse(json(payload));
      if (parsed.success) {
        const { label, confidence, start, end } = parsed.data.after;
        view.lastEvent = { label, confidence, start, end };
      }
    }
  }

  private onWorker(serverId: string, kind: string, payload: Buffer): void {
    if (serverIdProblem(serverId) !== undefined) return;
    if (kind === 'availability' && payload.length === 0) {
      this.workers.delete(serverId);
      return;
    }
    const worker = this.workers.get(serverId) ?? { serverId, online: false, answered: 0, rejected: 0, lastSeen: Date.now() };
    this.workers.set(serverId, worker);
    worker.lastSeen = Date.now();
    if (kind === 'availability') worker.online = payload.toString() === AVAILABILITY_ONLINE;
    if (kind === 'load') {
      const load = json(payload) as { answered?: unknown; rejected?: unknown; at?: unknown } | undefined;
      if (typeof load?.answered !== 'number' || typeof load.rejected !== 'number' || typeof load.at !== 'number') return;
      const previousAt = this.lastLoadAt.get(serverId);
      if (previousAt !== undefined && load.at > previousAt) worker.answeredPerMinute = ((load.answered - worker.answered) * 60_000) / (load.at - previousAt);
      this.lastLoadAt.set(serverId, load.at);
      worker.answered = load.answered;
      worker.rejected = load.rejected;
      worker.online = true;
    }
  }

  snapshot(): FleetSnapshot {
    const byName = <T>(a: T & { deviceId?: string; serverId?: string }, b: T & { deviceId?: string; serverId?: string }) =>
      (a.deviceId ?? a.serverId ?? '').localeCompare(b.deviceId ?? b.serverId ?? '');
    return {
      at: Date.now(),
      connected: this.client.connected,
      gateways: [...this.gateways.values()].sort(byName),
      workers: [...this.workers.values()].sort(byName),
    };
  }

  close(): Promise<void> {
    return this.client.endAsync();
  }
}
