import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';

export interface WatchedMessage {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
  /** Arrival order, from 0. */
  index: number;
}

/**
 * A test's own MQTT client that keeps every message on some topic filters in
 * arrival order (retained ones included), with waits that resolve as messages
 * arrive rather than by polling.
 */
export class MqttWatch {
  readonly messages: WatchedMessage[] = [];
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, packet, index: this.messages.length });
      for (const listener of this.listeners) listener();
    });
  }

  /** MQTT 5 by default, so response topics and correlation data are visible. */
  static async connect(url: string, filters: string[], options: IClientOptions = {}): Promise<MqttWatch> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 500, ...options });
    const watch = new MqttWatch(client);
    await client.subscribeAsync(filters, { qos: 1 });
    // A clean session forgets subscriptions: a restarted broker gets them again.
    client.on('connect', () => void client.subscribeAsync(filters, { qos: 1 }).catch(() => {}));
    return watch;
  }

  /** Messages on one topic, oldest first. */
  on(topic: string): WatchedMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** The first message (from `after` on, by arrival index) that `match` accepts, now or when it arrives. */
  waitFor(what: string, match: (message: WatchedMessage) => boolean, options: { after?: number; timeoutMs?: number } = {}): Promise<WatchedMessage> {
    const after = options.after ?? 0;
    const timeoutMs = options.timeoutMs ?? 60_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`no MQTT message ${what} within ${timeoutMs} ms (${this.messages.length} seen on ${[...new Set(this.messages.map((m) => m.topic))].join(', ') || 'no topic'})`));
      }, timeoutMs);
      const check = () => {
        const found = this.messages.find((m) => m.index >= after && match(m));
        if (!found) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(found);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Publishes as this client, at QoS 1: the test playing a gateway or an operator. */
  async publish(topic: string, payload: Buffer | string): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  close(): Promise<void> {
    return this.client.endAsync();
  }
}
