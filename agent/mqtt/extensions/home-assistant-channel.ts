import type { AgentConfig } from '../../config/agent-config.js';
import type { ConfigOwner } from '../../config/config-owners.js';
import { controlCommandFilter, controlCommandToPatch, discoveryMessages, homeAssistantStatusTopic, type DiscoveryDevice } from '../home-assistant.js';
import { AVAILABILITY_ONLINE } from '../topics.js';
import type { MqttTransport } from '../transport.js';
import type { ConfigChannel } from './config-channel.js';

/**
 * Home Assistant MQTT discovery and its controls: the configs published on every connect and
 * when Home Assistant says `online`, or (homeassistant.enabled false) the empty payloads that
 * delete them; a control's command becomes a config/set in the config channel's paced queue.
 * It owns the `homeassistant` section of config/set.
 */
export class HomeAssistantChannel implements ConfigOwner {
  readonly name = 'home assistant';
  readonly sections = ['homeassistant'] as const;
  private readonly undo: Array<() => void> = [];
  /** Home Assistant's routes (its status, the controls' commands): only while discovery is on. */
  private readonly unrouteHomeAssistant: Array<() => void> = [];
  private commands = 0;
  private enabled: boolean;

  constructor(
    private readonly transport: MqttTransport,
    private readonly config: ConfigChannel,
    /** The device as discovery describes it, less the topics (the transport's). */
    private readonly device: Omit<DiscoveryDevice, 'topics'>,
    enabled: boolean,
  ) {
    this.enabled = enabled;
  }

  start(): void {
    // On every connect: the configs, or while off the empty payloads that delete any left from before.
    this.undo.push(
      this.transport.onConnect(async () => {
        for (const message of this.messages()) await this.transport.publishAsync(message.topic, message.payload, { qos: 1, retain: true });
      }),
    );
    this.routeHomeAssistant();
    this.publishDiscovery();
  }

  stop(): void {
    this.unrouteAll();
    for (const undo of this.undo.splice(0)) undo();
  }

  /** Discovery on (configs published, controls taken) or off (configs deleted, controls no longer subscribed). */
  apply(next: AgentConfig): void {
    this.enabled = next.homeassistant.enabled;
    this.unrouteAll();
    this.routeHomeAssistant();
    this.publishDiscovery();
  }

  private routeHomeAssistant(): void {
    if (!this.enabled) return;
    this.unrouteHomeAssistant.push(
      this.transport.route(homeAssistantStatusTopic(this.device.discoveryPrefix), (_topic, payload) => {
        // Home Assistant restarted: without the configs again its entities would be lost until our next connect.
        if (payload.toString() === AVAILABILITY_ONLINE) this.publishDiscovery();
      }),
      this.transport.route(controlCommandFilter(this.transport.topics), (topic, payload) => this.onCommand(topic, payload)),
    );
  }

  private unrouteAll(): void {
    for (const unroute of this.unrouteHomeAssistant.splice(0)) unroute();
  }

  private onCommand(topic: string, payload: Buffer): void {
    const change = controlCommandToPatch(this.transport.topics, topic, payload);
    const id = `ha-${++this.commands}`;
    if ('error' in change) {
      this.config.respondError(id, `home assistant: ${change.error}`);
      return;
    }
    // The same path as config/set: the same validation, persistence and answer.
    this.config.submit(Buffer.from(JSON.stringify({ id, set: change.set })));
  }

  /** Enabled: the configs; disabled: the empty payloads that delete any left from before. */
  private messages() {
    return discoveryMessages({ ...this.device, topics: this.transport.topics }, !this.enabled);
  }

  private publishDiscovery(): void {
    for (const message of this.messages()) this.transport.publish(message.topic, message.payload, { qos: 1, retain: true });
  }
}
