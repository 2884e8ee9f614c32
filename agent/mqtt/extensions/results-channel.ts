import type { MqttTransport } from '../transport.js';

/** Results the link keeps retained: what it last published there is said again on every (re)connect. */
export type RetainedResult = 'state' | 'snapshot';

/** Where the result publisher's state, snapshot and events go out; the retained ones are replayed after every reconnect. */
export class ResultsChannel {
  private readonly retained = new Map<string, Buffer>();
  private unhook: (() => void) | undefined;

  constructor(private readonly transport: MqttTransport) {}

  start(): void {
    this.unhook = this.transport.onConnect(async () => {
      for (const [topic, payload] of this.retained) await this.transport.publishAsync(topic, payload, { qos: 1, retain: true });
    });
  }

  stop(): void {
    this.unhook?.();
  }

  /** The state or snapshot, retained; kept while the broker is away and published when it is back. */
  publishRetained(which: RetainedResult, payload: Buffer): void {
    const topic = this.transport.topics[which];
    this.retained.set(topic, payload);
    this.transport.publish(topic, payload, { qos: 1, retain: true });
  }

  /** An event message; while the broker is away it is not kept (the log has every event). */
  publishEvent(payload: Buffer): void {
    this.transport.publish(this.transport.topics.events, payload, { qos: 1 });
  }
}
