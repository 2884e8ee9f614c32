import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { redactUrl, type AgentConfig } from '../config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import { throttledWarning } from '../../common/log/throttled.js';
import { brokerConnectOptions } from './connect-options.js';
import { describeConnectionError } from './connection-errors.js';
import { TopicDispatcher, type TopicHandler } from './dispatcher.js';
import { disableNagle } from './no-delay.js';
import { MAX_OFFLOAD_ANSWER_BYTES } from './offload-codec.js';
import { logExcerpt, MAX_CONFIG_SET_BYTES } from './payloads.js';
import { attachReconnectBackoff } from './reconnect-backoff.js';
import { AVAILABILITY_OFFLINE, AVAILABILITY_ONLINE, deviceTopics, type DeviceTopics } from './topics.js';

/**
 * The largest payload the agent takes from the broker. What it subscribes to is at most a
 * config/set (16 KiB) or an offload answer (4 KiB); availability, health requests and Home
 * Assistant commands are a few bytes; it never subscribes to its snapshot. Four times that,
 * so a request a little too large still reaches its handler and is answered with the reason
 * (the config/set fuzz relies on it); anything bigger is a mistake or an attack and dropped.
 */
export const MAX_INBOUND_PAYLOAD_BYTES = 4 * Math.max(MAX_CONFIG_SET_BYTES, MAX_OFFLOAD_ANSWER_BYTES);
/** What one packet may add around that payload: the topic (at most 512 bytes), MQTT 5 properties, the headers. */
export const MAX_INBOUND_PACKET_BYTES = MAX_INBOUND_PAYLOAD_BYTES + 4096;

export function mqttClientOptions(config: AgentConfig['mqtt'], deviceId: string, topics: DeviceTopics, protocolVersion: 4 | 5): IClientOptions {
  return {
    ...brokerConnectOptions(config),
    protocolVersion,
    clientId: `edge-exit-${deviceId}`,
    clean: true,
    will: { topic: topics.availability, payload: Buffer.from(AVAILABILITY_OFFLINE), qos: 1, retain: true },
    // MQTT 5: the broker must not send bigger packets (it drops them for this client), so
    // a 20 MB publish to a subscribed topic never reaches the gateway's memory at all.
    ...(protocolVersion === 5 ? { properties: { maximumPacketSize: MAX_INBOUND_PACKET_BYTES } } : {}),
  };
}

export interface TransportOptions {
  url: string;
  deviceId: string;
  /** The broker settings: credentials, TLS, prefix, reconnect bounds. */
  mqtt: AgentConfig['mqtt'];
  protocolVersion: 4 | 5;
}

/** What an extension does on every (re)connect, after the subscriptions and the availability: publishes its retained messages. */
export type ConnectHook = () => Promise<void>;

/**
 * The agent's connection to the broker and nothing else: it connects in start() (never in the
 * constructor), announces itself with a retained availability and a last will, backs off while
 * the broker is away, subscribes the dispatcher's filters on every connect, and hands each
 * message to the dispatcher. Extensions route their topics and add connect hooks.
 */
export class MqttTransport {
  readonly topics: DeviceTopics;
  readonly #dispatcher = new TopicDispatcher();
  readonly #hooks: ConnectHook[] = [];
  readonly #closeListeners: Array<() => void> = [];
  #client: MqttClient | undefined;
  /** What the broker refuses this agent, with the fix; undefined while the link works. */
  #problem: string | undefined;
  /** The last connection failure logged: a broker refusing every retry the same way is said once, not every backoff. */
  #lastFailure: string | undefined;
  /** Messages dropped for their size (MQTT 3.1.1 has no maximum packet size to tell the broker). */
  #oversize = 0;
  readonly #warnOversize = throttledWarning();

  constructor(private readonly options: TransportOptions) {
    this.topics = deviceTopics(options.deviceId, options.mqtt.prefix);
  }

  get protocolVersion(): 4 | 5 {
    return this.options.protocolVersion;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  get problem(): string | undefined {
    return this.#problem;
  }

  /** Messages dropped for being larger than anything the agent takes. */
  get oversizeDropped(): number {
    return this.#oversize;
  }

  /** Connects (and keeps reconnecting with backoff); returns at once: the agent runs without a broker. */
  start(): void {
    if (this.#client) return;
    const { url, mqtt: settings } = this.options;
    const client = mqtt.connect(url, mqttClientOptions(settings, this.options.deviceId, this.topics, this.options.protocolVersion));
    this.#client = client;
    disableNagle(client);
    attachReconnectBackoff(client, { minMs: settings.reconnectMinMs, maxMs: settings.reconnectMaxMs });
    client.on('connect', () => void this.#onConnect());
    client.on('error', (error) => {
      const message = `${describeConnectionError(error, url, settings)}; retrying with backoff`;
      if (message !== this.#lastFailure) logger.warn(message);
      this.#lastFailure = message;
      this.#problem = message;
    });
    client.on('message', (topic, payload, packet) => {
      if (payload.length > MAX_INBOUND_PAYLOAD_BYTES) {
        // Dropped before any handler parses it; a 3.1.1 broker sends whatever it is given.
        this.#oversize++;
        this.#warnOversize(`mqtt: dropped a ${payload.length}-byte message on ${logExcerpt(topic, 120)}: at most ${MAX_INBOUND_PAYLOAD_BYTES} bytes are taken (${this.#oversize} so far)`);
        return;
      }
      const matched = this.#dispatcher.dispatch(topic, payload, (filter, error) => logger.warn(`mqtt: the handler of ${filter} failed on ${topic}: ${(error as Error).message}`), packet);
      if (!matched) logger.debug(`mqtt: no handler for ${topic}`);
    });
    client.on('close', () => {
      for (const listener of this.#closeListeners) listener();
    });
  }

  /** Says `offline` (retained) and disconnects. */
  async stop(): Promise<void> {
    const client = this.#client;
    if (!client) return;
    if (client.connected) await client.publishAsync(this.topics.availability, AVAILABILITY_OFFLINE, { qos: 1, retain: true }).catch(() => {});
    await client.endAsync();
  }

  /**
   * Routes a topic filter to a handler; subscribed now when connected, and on every connect.
   * The function returned removes the route (and the subscription, when no other route uses it).
   */
  route(filter: string, handler: TopicHandler): () => void {
    const unroute = this.#dispatcher.route(filter, handler);
    if (this.connected) void this.#subscribe([filter]).then((problem) => problem && this.#say(problem));
    return () => {
      unroute();
      if (this.connected && !this.#dispatcher.routes(filter)) void this.#client!.unsubscribeAsync(filter).catch(() => {});
    };
  }

  /** Runs on every connect, in the order added, after the subscriptions and the availability. */
  onConnect(hook: ConnectHook): () => void {
    this.#hooks.push(hook);
    return () => void this.#hooks.splice(this.#hooks.indexOf(hook) >>> 0, 1);
  }

  /** Runs when a connection (or an attempt) closes. */
  onClose(listener: () => void): void {
    this.#closeListeners.push(listener);
  }

  /** Fire and forget; nothing is sent, and nothing kept, while the broker is away. */
  publish(topic: string, payload: Buffer, options: IClientPublishOptions, onError?: (error: Error) => void): void {
    if (!this.connected) return;
    this.#client!.publish(topic, payload, options, (error) => {
      if (error) onError?.(error);
    });
  }

  /** Published and awaited; rejects with `publish on <topic> (<why>)`, the words the connect problem uses. */
  async publishAsync(topic: string, payload: Buffer, options: IClientPublishOptions): Promise<void> {
    if (!this.#client) throw new Error(`publish on ${topic} (not started)`);
    try {
      await this.#client.publishAsync(topic, payload, options);
    } catch (error) {
      throw new Error(`publish on ${topic} (${(error as Error).message})`);
    }
  }

  #fix(): string {
    const user = this.options.mqtt.username ?? 'this login';
    return `the broker's ACL must let ${user} use ${this.topics.prefix}/${this.options.deviceId}/# (deploy/mosquitto/edge-exit.acl grants what an agent needs; is deviceId its user name?)`;
  }

  #say(problem: string): void {
    this.#problem = problem;
    logger.warn(problem);
  }

  /** Subscribes; returns the problem when the broker refused a filter. */
  async #subscribe(filters: string[]): Promise<string | undefined> {
    if (filters.length === 0) return undefined;
    const granted = await this.#client!.subscribeAsync(filters, { qos: 1 });
    const denied = granted.filter((grant) => grant.qos === 128).map((grant) => grant.topic);
    return denied.length > 0 ? `mqtt: not authorized to subscribe to ${denied.join(', ')}: ${this.#fix()}` : undefined;
  }

  async #onConnect(): Promise<void> {
    this.#lastFailure = undefined;
    this.#problem = undefined;
    logger.info(`mqtt: connected to ${redactUrl(this.options.url)} as ${this.options.deviceId}`);
    let problem: string | undefined;
    try {
      problem = await this.#subscribe(this.#dispatcher.filters).catch((error: Error) => {
        throw new Error(`subscribe (${error.message})`);
      });
      await this.publishAsync(this.topics.availability, Buffer.from(AVAILABILITY_ONLINE), { qos: 1, retain: true });
      for (const hook of [...this.#hooks]) await hook();
    } catch (error) {
      problem = `mqtt: could not ${(error as Error).message}: ${this.#fix()}`;
    }
    if (problem) this.#say(problem);
  }
}
