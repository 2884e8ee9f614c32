import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { redactUrl, type AgentConfig } from '../config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import { brokerConnectOptions } from './connect-options.js';
import { describeConnectionError } from './connection-errors.js';
import { disableNagle } from './no-delay.js';
import { attachReconnectBackoff } from './reconnect-backoff.js';
import type { Outbox } from './outbox.js';
import { parseOffloadAnswer, type OffloadAnswer } from './offload-codec.js';
import { controlCommandFilter, controlCommandToPatch, homeAssistantStatusTopic, type DiscoveryMessage } from './home-assistant.js';
import { configResponseSchema, encodeJsonPayload, leadingRequestId } from './payloads.js';
import { SlicedQueue } from './sliced-queue.js';
import {
  AVAILABILITY_OFFLINE,
  AVAILABILITY_ONLINE,
  deviceTopics,
  requestIdFromOffloadResponse,
  serverAvailabilityFilter,
  serverIdFromAvailability,
  type DeviceTopics,
} from './topics.js';

export interface AgentLinkHandlers {
  /** A server answer; `late` when it came after the deadline (the local answer was used). */
  onAnswer(requestId: string, answer: OffloadAnswer, late: boolean): void;
  /** A config/set message: returns the response and, when accepted, the new retained state. */
  onConfigSet?(bytes: Buffer): { response: Buffer; state: Buffer | undefined };
  /** The retained config/state to publish on every (re)connect. */
  configState?(): Buffer;
  /** A health request: returns the answer. */
  onHealthRequest?(payload: Buffer): Buffer;
}

/** Home Assistant discovery as the link runs it: configs published on every connect and on Home Assistant's `online`. */
export interface HomeAssistantLink {
  enabled: boolean;
  discoveryPrefix: string;
  /** The configs, or (remove) the empty payloads that delete them. */
  messages(remove: boolean): DiscoveryMessage[];
}

/** Results the link keeps retained: what it last published there is said again on every (re)connect. */
export type RetainedResult = 'state' | 'snapshot';

interface Pending {
  requestId: string;
  frame: Buffer;
  queuedAt: number;
  /** When it last went to the broker; undefined while it has not been sent yet. */
  sentAt: number | undefined;
}

/**
 * config/set gets at most a fifth of the event loop in a burst (2 ms slices, 8 ms pauses):
 * an operator sends a few a minute, and a flood must not take the frame loop's time.
 */
const CONFIG_SET_PACING = { sliceMs: 2, pauseMs: 8, limit: 500 };

/** An unanswered request is sent again this often (the server answers a repeat from its cache). */
const RESEND_AFTER_MS = 2000;

export function mqttClientOptions(config: AgentConfig['mqtt'], deviceId: string, topics: DeviceTopics, protocolVersion: 4 | 5): IClientOptions {
  return {
    ...brokerConnectOptions(config),
    protocolVersion,
    clientId: `edge-exit-${deviceId}`,
    clean: true,
    will: { topic: topics.availability, payload: Buffer.from(AVAILABILITY_OFFLINE), qos: 1, retain: true },
  };
}

/**
 * The agent's side of MQTT: availability with a last will, telemetry, remote
 * config, and offload requests with deadlines. The agent classifies without a
 * broker: the link connects whenever one appears, backs off while it is away,
 * resubscribes and republishes its state on every connect, and keeps offload
 * requests in a bounded queue with expiry meanwhile.
 */
export class AgentLink {
  readonly topics: DeviceTopics;
  private readonly client: MqttClient;
  /** Requests not yet answered, oldest first: sent again after a reconnect or a silence, until answered or expired. */
  private readonly pending = new Map<string, Pending>();
  private readonly deadlines = new Map<string, number>();
  private readonly answered = new Set<string>();
  /** Offload server workers whose retained availability says `online`. */
  private readonly serversOnline = new Set<string>();
  private readonly serverFilter: string;
  /** The deadline, queue bound and expiry in force: remote config changes them live. */
  private offloadSettings: AgentConfig['offload'];
  /** The last connection failure logged: a broker refusing every retry the same way is said once, not every backoff. */
  private linkProblem: string | undefined;
  private lastFailure: string | undefined;
  /** Waiting in settle() for the last unanswered request to be answered. */
  private settledWaiters: Array<() => void> = [];
  private readonly sweeper: NodeJS.Timeout;
  private readonly configRequests = new SlicedQueue<Buffer>({
    ...CONFIG_SET_PACING,
    handle: (payload) => void this.configSetFrom(payload),
    overflow: (payload) => {
      const id = leadingRequestId(payload);
      const reason = `config/set: ${CONFIG_SET_PACING.limit} requests are already waiting; send fewer, and wait for each answer`;
      this.publishConfigResponse(encodeJsonPayload(configResponseSchema, { id: id ?? null, status: 'error', reason }));
    },
  });
  readonly counters = { sent: 0, resent: 0, queued: 0, expired: 0, droppedFull: 0, answers: 0, lateAnswers: 0, duplicateAnswers: 0, deadlinesMissed: 0 };

  constructor(
    private readonly options: {
      url: string;
      deviceId: string;
      config: AgentConfig;
      protocolVersion: 4 | 5;
      handlers: AgentLinkHandlers;
      /** Keeps unanswered requests on disk across restarts; in memory only without it. */
      outbox?: Outbox;
    },
  ) {
    this.offloadSettings = options.config.offload;
    for (const item of options.outbox?.all() ?? []) this.pending.set(item.requestId, { ...item, sentAt: undefined });
    this.topics = deviceTopics(options.deviceId, options.config.mqtt.prefix);
    this.serverFilter = serverAvailabilityFilter(options.config.mqtt.prefix);
    this.client = mqtt.connect(options.url, mqttClientOptions(options.config.mqtt, options.deviceId, this.topics, options.protocolVersion));
    disableNagle(this.client);
    attachReconnectBackoff(this.client, { minMs: options.config.mqtt.reconnectMinMs, maxMs: options.config.mqtt.reconnectMaxMs });
    this.sweeper = setInterval(() => this.sweep(), 100);
    this.sweeper.unref();
    this.client.on('connect', () => void this.onConnect());
    this.client.on('error', (error) => {
      const message = `${describeConnectionError(error, options.url, options.config.mqtt)}; retrying with backoff`;
      if (message !== this.lastFailure) logger.warn(message);
      this.lastFailure = message;
      this.linkProblem = message;
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    // A clean session resends the retained availabilities on the next subscribe; until then nothing is known.
    this.client.on('close', () => this.serversOnline.clear());
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Offload server workers known to be up; 0 while the broker is away. */
  get offloadServers(): number {
    // Read on every controller step: a count, not the sorted list below.
    return this.client.connected ? this.serversOnline.size : 0;
  }

  /** The ids of the offload servers that say they are up, sorted; none while the link is down. */
  get offloadServerIds(): string[] {
    return this.client.connected ? [...this.serversOnline].sort() : [];
  }

  /**
   * What the broker refuses this agent, in words with the fix, for status and telemetry;
   * undefined while the link works as it should.
   */
  get problem(): string | undefined {
    return this.linkProblem;
  }

  private async onConnect(): Promise<void> {
    this.lastFailure = undefined;
    this.linkProblem = undefined;
    logger.info(`mqtt: connected to ${redactUrl(this.options.url)} as ${this.options.deviceId}`);
    const user = this.options.config.mqtt.username ?? 'this login';
    const fix = `the broker's ACL must let ${user} use ${this.topics.prefix}/${this.options.deviceId}/# (deploy/mosquitto/edge-exit.acl grants what an agent needs; is deviceId its user name?)`;
    let step = 'subscribe';
    try {
      const ha = this.homeAssistant ? [homeAssistantStatusTopic(this.homeAssistant.discoveryPrefix), controlCommandFilter(this.topics)] : [];
      const health = this.options.handlers.onHealthRequest ? [this.topics.healthRequest] : [];
      const granted = await this.client.subscribeAsync([this.topics.configSet, this.topics.offloadResponseFilter, this.serverFilter, ...health, ...ha], { qos: 1 });
      const denied = granted.filter((grant) => grant.qos === 128).map((grant) => grant.topic);
      if (denied.length > 0) this.linkProblem = `mqtt: not authorized to subscribe to ${denied.join(', ')}: ${fix}`;
      step = `publish on ${this.topics.availability}`;
      await this.client.publishAsync(this.topics.availability, AVAILABILITY_ONLINE, { qos: 1, retain: true });
      const state = this.options.handlers.configState?.();
      step = `publish on ${this.topics.configState}`;
      if (state) await this.client.publishAsync(this.topics.configState, state, { qos: 1, retain: true });
      for (const message of this.discoveryMessages()) {
        step = `publish on ${message.topic}`;
        await this.client.publishAsync(message.topic, message.payload, { qos: 1, retain: true });
      }
      for (const [topic, payload] of this.retainedResults) {
        step = `publish on ${topic}`;
        await this.client.publishAsync(topic, payload, { qos: 1, retain: true });
      }
    } catch (error) {
      this.linkProblem = `mqtt: could not ${step} (${(error as Error).message}): ${fix}`;
    }
    if (this.linkProblem) logger.warn(this.linkProblem);
    // Sends what waited while the broker was away.
    this.sweep();
  }

  /**
   * A config/set from another front door (the dashboard): handled at once, published as
   * one from MQTT would be (response, retained state), and the response returned.
   */
  configSetFrom(payload: Buffer): Buffer | undefined {
    const handled = this.options.handlers.onConfigSet?.(payload);
    if (!handled) return undefined;
    this.publishConfigResponse(handled.response);
    if (handled.state) void this.client.publishAsync(this.topics.configState, handled.state, { qos: 1, retain: true }).catch(() => {});
    return handled.response;
  }

  private publishConfigResponse(response: Buffer): void {
    void this.client.publishAsync(this.topics.configResponse, response, { qos: 1 }).catch(() => {});
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.topics.configSet) {
      this.configRequests.push(payload);
      return;
    }
    if (topic === this.topics.healthRequest) {
      const answer = this.options.handlers.onHealthRequest?.(payload);
      if (answer) void this.client.publishAsync(this.topics.healthResponse, answer, { qos: 1 }).catch(() => {});
      return;
    }
    if (this.homeAssistant && topic === homeAssistantStatusTopic(this.homeAssistant.discoveryPrefix)) {
      // Home Assistant restarted: without the configs again its entities would be lost until our next connect.
      if (payload.toString() === AVAILABILITY_ONLINE) this.publishDiscovery();
      return;
    }
    if (this.homeAssistant && topic.startsWith(`${this.topics.prefix}/${this.topics.deviceId}/ha/`)) {
      const change = controlCommandToPatch(this.topics, topic, payload);
      const id = `ha-${++this.controlCommands}`;
      if ('error' in change) {
        this.publishConfigResponse(encodeJsonPayload(configResponseSchema, { id, status: 'error', reason: `home assistant: ${change.error}` }));
        return;
      }
      // The same path as config/set: the same validation, persistence and answer.
      this.configRequests.push(Buffer.from(JSON.stringify({ id, set: change.set })));
      return;
    }
    const serverId = serverIdFromAvailability(topic, this.topics.prefix);
    if (serverId !== undefined) {
      const online = payload.toString() === AVAILABILITY_ONLINE;
      if (online !== this.serversOnline.has(serverId)) logger.info(`mqtt: offload server ${serverId} is ${online ? 'up' : 'gone'}`);
      if (online) this.serversOnline.add(serverId);
      else this.serversOnline.delete(serverId);
      return;
    }
    const requestId = requestIdFromOffloadResponse(topic, this.topics);
    const parsed = parseOffloadAnswer(payload);
    if (!requestId || !parsed.ok || parsed.answer.requestId !== requestId) {
      logger.warn(`mqtt: ignoring a malformed answer on ${topic}: ${parsed.ok ? 'its request id does not match the topic' : parsed.reason}`);
      return;
    }
    if (this.answered.has(requestId)) {
      this.counters.duplicateAnswers++;
      return;
    }
    this.answered.add(requestId);
    this.forget(requestId);
    if (this.answered.size > 100_000) this.answered.delete(this.answered.values().next().value!);
    const late = !this.deadlines.has(requestId);
    this.deadlines.delete(requestId);
    this.counters.answers++;
    if (late) this.counters.lateAnswers++;
    this.options.handlers.onAnswer(requestId, parsed.answer, late);
  }

  private publishOffload(item: Pending, now = Date.now()): void {
    if (item.sentAt !== undefined) this.counters.resent++;
    else this.counters.sent++;
    item.sentAt = now;
    const properties =
      this.options.protocolVersion === 5 ? { properties: { responseTopic: this.topics.offloadResponse(item.requestId), correlationData: Buffer.from(item.requestId) } } : {};
    this.client.publish(this.topics.offloadRequest, item.frame, { qos: 1, ...properties }, (error) => {
      if (error) logger.warn(`mqtt: offload ${item.requestId} not sent: ${error.message}`);
    });
  }

  /** Remote config changed the offload settings; requests already made keep their deadlines. */
  updateOffload(settings: AgentConfig['offload']): void {
    this.offloadSettings = settings;
  }

  /** Sends now, or keeps it while disconnected; the deadline runs from now either way. */
  offload(requestId: string, frame: Buffer, now = Date.now()): 'sent' | 'queued' | 'dropped' {
    this.deadlines.set(requestId, now + this.offloadSettings.deadlineMs);
    if (this.pending.size >= this.offloadSettings.maxQueued) {
      const oldest = this.pending.keys().next().value;
      if (oldest === undefined) return 'dropped';
      this.forget(oldest);
      this.counters.droppedFull++;
    }
    const item: Pending = { requestId, frame, queuedAt: now, sentAt: undefined };
    this.pending.set(requestId, item);
    this.remember(item);
    if (this.client.connected) {
      this.publishOffload(item, now);
      return 'sent';
    }
    this.counters.queued++;
    return 'queued';
  }

  /**
   * Expires deadlines (the local answer stands) and requests older than the
   * queue expiry (no answer will be waited for); sends again what is still
   * unanswered after a silence, which covers requests a restarting broker lost.
   */
  sweep(now = Date.now()): void {
    for (const [requestId, deadline] of this.deadlines) {
      if (deadline > now) continue;
      this.deadlines.delete(requestId);
      // No answer in time: the device's own answer stands (a later answer is still logged).
      this.counters.deadlinesMissed++;
    }
    const expiry = this.offloadSettings.queueExpiryMs;
    for (const item of this.pending.values()) {
      if (item.queuedAt + expiry <= now) {
        this.forget(item.requestId);
        this.counters.expired++;
      } else if (this.client.connected && (item.sentAt === undefined || item.sentAt + RESEND_AFTER_MS <= now)) {
        this.publishOffload(item, now);
      }
    }
  }

  /** A failing outbox write costs durability, not the request: it stays in memory. */
  private remember(item: Pending): void {
    try {
      this.options.outbox?.add(item);
    } catch (error) {
      logger.warn(`offload outbox: ${item.requestId} kept in memory only: ${(error as Error).message}`);
    }
  }

  private forget(requestId: string): void {
    this.pending.delete(requestId);
    if (this.pending.size === 0) for (const settled of this.settledWaiters.splice(0)) settled();
    try {
      this.options.outbox?.delete(requestId);
    } catch (error) {
      logger.warn(`offload outbox: could not remove ${requestId}: ${(error as Error).message}`);
    }
  }

  get queuedCount(): number {
    let waiting = 0;
    for (const item of this.pending.values()) if (item.sentAt === undefined) waiting++;
    return waiting;
  }

  /** config/set messages received and not yet handled. */
  get configRequestsWaiting(): number {
    return this.configRequests.waiting;
  }

  /** Requests sent or waiting that have no answer yet. */
  get unansweredCount(): number {
    return this.pending.size;
  }

  /**
   * Waits, at most `timeoutMs`, for the requests in flight to be answered, so that a
   * stopping agent still logs the answers already on their way; without a broker
   * there is nothing to wait for. What stays unanswered waits in the outbox.
   */
  async settle(timeoutMs: number): Promise<void> {
    if (this.pending.size === 0 || !this.client.connected) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.settledWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private readonly retainedResults = new Map<string, Buffer>();
  private homeAssistant: HomeAssistantLink | undefined;
  private controlCommands = 0;

  /** Turns discovery on (configs published), off (configs deleted) or sets it up; subscriptions follow on the next connect. */
  setHomeAssistant(homeAssistant: HomeAssistantLink | undefined): void {
    const subscribedBefore = this.homeAssistant !== undefined;
    this.homeAssistant = homeAssistant;
    if (!this.client.connected) return;
    if (homeAssistant && !subscribedBefore) {
      void this.client.subscribeAsync([homeAssistantStatusTopic(homeAssistant.discoveryPrefix), controlCommandFilter(this.topics)], { qos: 1 }).catch(() => {});
    }
    this.publishDiscovery();
  }

  /** Enabled: the configs; disabled: the empty payloads that delete any left from before. */
  private discoveryMessages(): DiscoveryMessage[] {
    return this.homeAssistant ? this.homeAssistant.messages(!this.homeAssistant.enabled) : [];
  }

  private publishDiscovery(): void {
    if (!this.client.connected) return;
    for (const message of this.discoveryMessages()) this.client.publish(message.topic, message.payload, { qos: 1, retain: true });
  }

  /** The state or snapshot, retained; kept while the broker is away and published when it is back. */
  publishRetained(which: RetainedResult, payload: Buffer): void {
    const topic = this.topics[which];
    this.retainedResults.set(topic, payload);
    if (this.client.connected) this.client.publish(topic, payload, { qos: 1, retain: true });
  }

  /** An event message; while the broker is away it is not kept (the log has every event). */
  publishEvent(payload: Buffer): void {
    if (this.client.connected) this.client.publish(this.topics.events, payload, { qos: 1 });
  }

  publishTelemetry(payload: Buffer): void {
    if (this.client.connected) this.client.publish(this.topics.telemetry, payload, { qos: 0 });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.configRequests.clear();
    if (this.client.connected) await this.client.publishAsync(this.topics.availability, AVAILABILITY_OFFLINE, { qos: 1, retain: true }).catch(() => {});
    await this.client.endAsync();
  }
}
