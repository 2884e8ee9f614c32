import os from 'node:os';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { createExitPolicy, type ExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { logger } from '../common/log/logger.js';
import { throttledWarning } from '../common/log/throttled.js';
import { type AgentConfig, mqttSchema, redactUrl } from '../agent/config/agent-config.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { brokerConnectOptions } from '../agent/mqtt/connect-options.js';
import { describeConnectionError, isBrokerUnreachable } from '../agent/mqtt/connection-errors.js';
import { disableNagle } from '../agent/mqtt/no-delay.js';
import { attachReconnectBackoff, BackoffSchedule } from '../agent/mqtt/reconnect-backoff.js';
import { decodeOffload, encodeOffloadAnswer, SERVER_ID_PROPERTY, type OffloadPayload } from '../agent/mqtt/offload-codec.js';
import {
  AVAILABILITY_ONLINE,
  DEFAULT_TOPIC_PREFIX,
  defaultServerId,
  deviceIdFromOffloadRequest,
  deviceTopics,
  serverAvailabilityTopic,
  serverLoadTopic,
  serverOffloadFilter,
} from '../agent/mqtt/topics.js';
import { encodedImageToRgb } from '../agent/preprocess/image-to-rgb.js';
import type { InterpreterOptions } from '../agent/runtime/interpreter.js';

export interface OffloadServerOptions {
  pkg: ModelPackage;
  brokerUrl: string;
  prefix?: string;
  /** Set on brokers with shared subscriptions (Mosquitto): workers of one group split the requests. */
  shareGroup?: string;
  /** 5 for request/response properties; 4 for MQTT 3.1.1 brokers such as aedes (answers then go to a per-request topic). */
  protocolVersion?: 4 | 5;
  interpreter?: InterpreterOptions;
  /** Login and TLS, taken as the agent takes them (its url is not used: brokerUrl is). */
  mqtt?: AgentConfig['mqtt'];
  /** Request ids remembered for de-duplication. */
  dedupSize?: number;
  /** Names this worker on its availability topic; default host name and process id. */
  serverId?: string;
  /**
   * Called when the broker, reached at last after being away at start-up,
   * refuses this server (credentials, TLS): retrying would not help. The
   * command line stops the process; by default the refusal is only logged.
   */
  onRefused?: (message: string) => void;
}

type ConnectionError = Error & { code?: string | number };

const LOAD_EVERY_MS = 5000;

/** Servers started in this process, so that each gets its own default id. */
let serversStarted = 0;

export interface OffloadServerStats {
  answered: number;
  duplicates: number;
  rejected: number;
  /** Requests whose MQTT 5 response topic was not the requesting device's own: refused, never answered there. */
  foreignResponseTopics: number;
  /** Refusals by reason; they add up to `rejected`. */
  rejectedBy: Record<RefusalReason, number>;
}

/** Why a request was refused: what the throttled warnings say in full, counted one by one here. */
export type RefusalReason = 'unreadable' | 'no valid device in the topic' | 'another model' | 'foreign response topic' | 'could not be computed';

/**
 * One worker of the offload server: it finishes the full model for frames the
 * gateways could not settle, from the int8 seam they send (resuming at the next
 * segment) or from the image, and answers once per request id.
 */
export class OffloadServer {
  /** Bad requests come from the network, one per frame: their warnings are throttled. */
  private readonly warnBadRequest = throttledWarning();
  readonly stats: OffloadServerStats = {
    answered: 0,
    duplicates: 0,
    rejected: 0,
    foreignResponseTopics: 0,
    rejectedBy: { unreadable: 0, 'no valid device in the topic': 0, 'another model': 0, 'foreign response topic': 0, 'could not be computed': 0 },
  };

  private refuse(reason: RefusalReason, message: string): void {
    this.stats.rejected++;
    this.stats.rejectedBy[reason]++;
    this.warnBadRequest(message);
  }
  private readonly engine: MultiExitEngine;
  private readonly fullPolicy: ExitPolicy;
  /** Answers by device and request id; a promise while computing, so a repeat arriving meanwhile waits for it. */
  private readonly answers = new Map<string, Promise<Buffer | undefined>>();
  private readonly prefix: string;
  /** Retained `online` here tells agents a server can take their offloads. */
  readonly availabilityTopic: string;
  private readonly serverId: string;
  private readonly loadTopic: string;
  private loadTimer: NodeJS.Timeout | undefined;
  private readonly labels: string[];
  private client: MqttClient | undefined;
  private readonly settings: AgentConfig['mqtt'];
  /** Settles when the server is connected and subscribed (or closed while waiting). */
  connected: Promise<void> = Promise.resolve();
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;

  private constructor(private readonly options: OffloadServerOptions) {
    this.prefix = options.prefix ?? DEFAULT_TOPIC_PREFIX;
    const serverId = options.serverId ?? defaultServerId(os.hostname(), process.pid, ++serversStarted);
    this.serverId = serverId;
    this.availabilityTopic = serverAvailabilityTopic(serverId, this.prefix);
    this.loadTopic = serverLoadTopic(serverId, this.prefix);
    this.settings = options.mqtt ?? mqttSchema.parse({});
    const task = Object.keys(options.pkg.manifest.labels)[0]!;
    this.labels = options.pkg.manifest.labels[task]!;
    this.engine = MultiExitEngine.fromPackage(options.pkg, options.interpreter ?? { backend: 'xnnpack', threads: 1 }, task);
    this.fullPolicy = createExitPolicy({ policy: 'max-probability', thresholds: new Array<number>(this.engine.exitCount).fill(1) }, this.engine.exitCount);
  }

  /**
   * Connects and subscribes. A broker that refuses the server (login, TLS) stops
   * start-up with the setting to fix. A broker that is not there yet (the server
   * started first at boot, or the network is down) is retried with backoff in the
   * background, and the server answers once it connects; `connected` says when.
   */
  static async start(options: OffloadServerOptions): Promise<OffloadServer> {
    const server = new OffloadServer(options);
    try {
      await server.connect();
    } catch (error) {
      if (!isBrokerUnreachable(error as ConnectionError)) throw new Error(server.describe(error as ConnectionError));
      logger.warn(`offload server: ${server.describe(error as ConnectionError)}; retrying with backoff until it answers`);
      server.connected = server.retryUntilConnected();
    }
    return server;
  }

  private describe(error: ConnectionError): string {
    return describeConnectionError(error, this.options.brokerUrl, this.settings);
  }

  private async retryUntilConnected(): Promise<void> {
    const backoff = new BackoffSchedule({ minMs: this.settings.reconnectMinMs, maxMs: this.settings.reconnectMaxMs });
    while (!this.closed) {
      await new Promise<void>((resolve) => {
        this.wakeRetry = resolve;
        this.retryTimer = setTimeout(resolve, backoff.current());
      });
      if (this.closed) return;
      try {
        await this.connect();
        logger.info(`offload server: connected to ${redactUrl(this.options.brokerUrl)} after waiting for it`);
        return;
      } catch (error) {
        if (!isBrokerUnreachable(error as ConnectionError)) {
          const message = this.describe(error as ConnectionError);
          logger.error(`offload server: ${message}`);
          this.options.onRefused?.(message);
          return;
        }
        backoff.lengthen();
      }
    }
  }

  private async connect(): Promise<void> {
    const client = await mqtt.connectAsync(this.options.brokerUrl, {
      ...brokerConnectOptions(this.settings),
      protocolVersion: this.options.protocolVersion ?? 5,
      clean: true,
      // Attempts are paced here until the first connect; mqtt.js paces them after it.
      reconnectPeriod: 0,
      // An empty retained will deletes the retained `online`: a crashed worker leaves nothing behind.
      will: { topic: this.availabilityTopic, payload: Buffer.alloc(0), qos: 1, retain: true },
    });
    if (this.closed) {
      await client.endAsync();
      return;
    }
    this.client = client;
    disableNagle(client);
    attachReconnectBackoff(client, { minMs: this.settings.reconnectMinMs, maxMs: this.settings.reconnectMaxMs });
    const filter = serverOffloadFilter(this.prefix, { shareGroup: this.options.shareGroup });
    // Subscriptions are renewed on every reconnect, as a clean session forgets them; the will
    // may have emptied the availability meanwhile, so it is said again.
    client.on('connect', () => void this.announce(client, filter).catch((e) => logger.warn(`offload server: resubscribe failed: ${e.message}`)));
    client.on('message', (topic, payload, packet) => void this.handle(topic, payload, packet).catch((error: Error) => logger.warn(`offload server: answering on ${topic} failed: ${error.message}`)));
    await this.announce(client, filter);
    // QoS 0 and not retained: a missed one is replaced 5 s later, and a stopped worker leaves none behind.
    this.loadTimer = setInterval(() => {
      const { answered, duplicates, rejected } = this.stats;
      if (client.connected) client.publish(this.loadTopic, JSON.stringify({ answered, duplicates, rejected, at: Date.now() }), { qos: 0 });
    }, LOAD_EVERY_MS);
    this.loadTimer.unref();
    logger.info(`offload server: ${this.options.pkg.manifest.name} on ${redactUrl(this.options.brokerUrl)}, subscribed to ${filter}`);
  }

  /** Subscribed first, so that an agent told `online` finds requests taken. */
  private async announce(client: MqttClient, filter: string): Promise<void> {
    await client.subscribeAsync(filter, { qos: 1 });
    await client.publishAsync(this.availabilityTopic, AVAILABILITY_ONLINE, { qos: 1, retain: true });
  }

  private matchesModel(payload: OffloadPayload): boolean {
    return payload.packageName === this.options.pkg.manifest.name && this.options.pkg.manifest.buildKey.startsWith(payload.modelHashPrefix);
  }

  private async answer(payload: OffloadPayload): Promise<{ label: number; confidence: number; ms: number }> {
    if (payload.kind === 'features') {
      if (payload.dtype !== 'int8') throw new Error(`features of type ${payload.dtype}; the seams of this package are int8`);
      return this.engine.finishFrom(payload.segment - 1, payload.data as Int8Array);
    }
    const { width, height, resize } = this.options.pkg.manifest.input;
    const started = performance.now();
    this.engine.input.data.set(await encodedImageToRgb(Buffer.from(payload.data), { width, height, resize }, 'offloaded image'));
    const result = this.engine.classify(this.fullPolicy);
    return { label: result.label, confidence: result.confidence, ms: performance.now() - started };
  }

  private async compute(deviceId: string, request: OffloadPayload): Promise<Buffer | undefined> {
    try {
      const result = await this.answer(request);
      this.stats.answered++;
      return encodeOffloadAnswer({
        requestId: request.requestId,
        label: this.labels[result.label] ?? String(result.label),
        confidence: Math.min(1, Math.max(0, result.confidence)),
        serverMs: result.ms,
        modelHash: this.options.pkg.manifest.buildKey,
      });
    } catch (error) {
      this.refuse('could not be computed', `offload server: request ${request.requestId} from ${deviceId} failed: ${(error as Error).message}`);
      return undefined;
    }
  }

  private async handle(topic: string, bytes: Buffer, packet: IPublishPacket): Promise<void> {
    const deviceId = deviceIdFromOffloadRequest(topic, this.prefix);
    const decoded = decodeOffload(bytes);
    if (!deviceId || !decoded.ok) {
      this.refuse(decoded.ok ? 'no valid device in the topic' : 'unreadable', `offload server: request on ${topic} refused: ${decoded.ok ? 'the topic names no valid device' : decoded.reason}`);
      return;
    }
    const request = decoded.payload;
    if (!this.matchesModel(request)) {
      this.refuse('another model', `offload server: request ${request.requestId} from ${deviceId} is for ${request.packageName}@${request.modelHashPrefix}, this server runs ${this.options.pkg.manifest.name}@${this.options.pkg.manifest.buildKey.slice(0, 16)}`);
      return;
    }
    // Answers go only to the requesting device's own response topic, derived from the topic the request came on:
    // a named one elsewhere (another device's config/set, a wildcard the broker would disconnect us for) is refused.
    const ownTopic = deviceTopics(deviceId, this.prefix).offloadResponse(request.requestId);
    const namedTopic = packet.properties?.responseTopic;
    if (namedTopic !== undefined && namedTopic !== ownTopic) {
      this.stats.foreignResponseTopics++;
      this.refuse('foreign response topic', `offload server: refused a request from ${deviceId} naming the response topic ${JSON.stringify(namedTopic.slice(0, 200))}, not its own ${ownTopic} (${this.stats.foreignResponseTopics} so far)`);
      return;
    }
    const key = `${deviceId}/${request.requestId}`;
    let pending = this.answers.get(key);
    if (pending) {
      // A QoS 1 redelivery or a retry: the same answer again, not a second computation.
      this.stats.duplicates++;
    } else {
      pending = this.compute(deviceId, request);
      this.answers.set(key, pending);
      if (this.answers.size > (this.options.dedupSize ?? 10_000)) this.answers.delete(this.answers.keys().next().value!);
    }
    const answer = await pending;
    if (!answer) {
      this.answers.delete(key);
      return;
    }
    const correlation = namedTopic && packet.properties?.correlationData ? { correlationData: packet.properties.correlationData } : {};
    // With MQTT 5 the answer names this worker, so the agent can check it against the servers that announced themselves.
    const properties = (this.options.protocolVersion ?? 5) === 5 ? { ...correlation, userProperties: { [SERVER_ID_PROPERTY]: this.serverId } } : undefined;
    await this.client!.publishAsync(ownTopic, answer, { qos: 1, ...(properties ? { properties } : {}) });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.loadTimer);
    this.wakeRetry?.();
    if (this.client?.connected) await this.client.publishAsync(this.availabilityTopic, Buffer.alloc(0), { qos: 1, retain: true }).catch(() => {});
    await this.client?.endAsync();
  }
}
