import type { AgentConfig } from '../config/agent-config.js';
import type { ConfigOwner } from '../config/config-owners.js';
import type { DiscoveryDevice } from './home-assistant.js';
import type { OffloadAnswer } from './offload-codec.js';
import type { Outbox } from './outbox.js';
import type { DeviceTopics } from './topics.js';
import { MqttTransport } from './transport.js';
import { ConfigChannel, type ConfigSetHandler } from './extensions/config-channel.js';
import { HealthChannel } from './extensions/health-channel.js';
import { HomeAssistantChannel } from './extensions/home-assistant-channel.js';
import { OffloadClient } from './extensions/offload-client.js';
import { ResultsChannel, type RetainedResult } from './extensions/results-channel.js';

export { mqttClientOptions } from './transport.js';
export type { RetainedResult };

/** One part of the MQTT side, started and stopped by whoever runs the link (the app's unit stack). */
export interface LinkUnit {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

export interface AgentLinkHandlers {
  /** A server answer; `late` when it came after the deadline (the local answer was used). */
  onAnswer(requestId: string, answer: OffloadAnswer, late: boolean): void;
  /** A config/set message: returns the response and, when accepted, the new retained state. Without it no config/set is taken. */
  onConfigSet?: ConfigSetHandler['handleSet'];
  /** The retained config/state to publish on every (re)connect. */
  configState?: ConfigSetHandler['stateMessage'];
  /** A health request: returns the answer. Without it health/request is not subscribed. */
  onHealthRequest?(payload: Buffer): Buffer;
}

export interface AgentLinkOptions {
  url: string;
  deviceId: string;
  config: AgentConfig;
  protocolVersion: 4 | 5;
  handlers: AgentLinkHandlers;
  /** Home Assistant discovery and controls (they need remoteConfig); without it, neither. */
  homeAssistant?: Omit<DiscoveryDevice, 'topics' | 'discoveryPrefix' | 'deviceId'>;
  /** Keeps unanswered requests on disk across restarts; in memory only without it. */
  outbox?: Outbox;
  /** The package's labels: offload answers naming another are refused (without them, any label is taken). */
  labels?: readonly string[];
}

/**
 * The agent's side of MQTT, put together: a transport (the connection, its backoff, the topic
 * → handler table) and the extensions that route their topics on it: the offload client
 * (requests, deadlines, server availability), the results channel (state, snapshot, events,
 * retained replay), and, when asked for, the config channel (config/set with its pacing,
 * config/state), health, and Home Assistant. `units` lists them in start order, for the app's
 * unit stack; start() and stop() run them all (tools and tests).
 */
export class AgentLink {
  readonly transport: MqttTransport;
  readonly offloadClient: OffloadClient;
  readonly results: ResultsChannel;
  readonly config: ConfigChannel | undefined;
  readonly homeAssistant: HomeAssistantChannel | undefined;
  readonly units: readonly LinkUnit[];

  constructor(options: AgentLinkOptions) {
    const { config } = options;
    const transport = new MqttTransport({ url: options.url, deviceId: options.deviceId, mqtt: config.mqtt, protocolVersion: options.protocolVersion });
    this.transport = transport;
    const { onAnswer, onConfigSet, configState, onHealthRequest } = options.handlers;
    this.offloadClient = new OffloadClient(transport, config.offload, onAnswer, options.outbox, options.labels);
    this.results = new ResultsChannel(transport);
    this.config = onConfigSet && configState ? new ConfigChannel(transport, { handleSet: onConfigSet, stateMessage: configState }) : undefined;
    const health = onHealthRequest ? new HealthChannel(transport, onHealthRequest) : undefined;
    const ha = options.homeAssistant;
    this.homeAssistant =
      ha && this.config
        ? new HomeAssistantChannel(transport, this.config, { ...ha, deviceId: options.deviceId, discoveryPrefix: config.homeassistant.discoveryPrefix }, config.homeassistant.enabled)
        : undefined;
    // Routed before the connect so the first subscribe carries them, in the order their retained messages go out.
    const units: Array<LinkUnit | undefined> = [
      { name: 'mqtt config', unit: this.config },
      { name: 'home assistant', unit: this.homeAssistant },
      { name: 'mqtt results', unit: this.results },
      { name: 'mqtt health', unit: health },
      { name: 'offload client', unit: this.offloadClient },
      { name: 'mqtt transport', unit: transport },
    ].map(({ name, unit }) => (unit ? { name, start: () => unit.start(), stop: () => unit.stop() } : undefined));
    this.units = units.filter((unit): unit is LinkUnit => unit !== undefined);
  }

  /** The extensions that own a section of config/set. */
  get configOwners(): ConfigOwner[] {
    return this.homeAssistant ? [this.homeAssistant] : [];
  }

  /** Starts every unit in order (tools and tests; the app starts them one by one); returns the link. */
  async start(): Promise<this> {
    for (const unit of this.units) await unit.start();
    return this;
  }

  async stop(): Promise<void> {
    for (const unit of [...this.units].reverse()) await unit.stop();
  }

  get topics(): DeviceTopics {
    return this.transport.topics;
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /** What the broker refuses this agent, in words with the fix, for status and telemetry; undefined while the link works. */
  get problem(): string | undefined {
    return this.transport.problem;
  }

  // What the offloader and the result publisher use, as before the split.
  get offloadServers(): number {
    return this.offloadClient.offloadServers;
  }

  updateOffload(settings: AgentConfig['offload']): void {
    this.offloadClient.updateOffload(settings);
  }

  offload(requestId: string, frame: Buffer, now?: number): 'sent' | 'queued' | 'dropped' {
    return this.offloadClient.offload(requestId, frame, now);
  }

  publishRetained(which: RetainedResult, payload: Buffer): void {
    this.results.publishRetained(which, payload);
  }

  publishEvent(payload: Buffer): void {
    this.results.publishEvent(payload);
  }
}
