import type { MqttTransport } from '../transport.js';

/** health/request in, health/response out: the answer comes from the app's health report. */
export class HealthChannel {
  private unroute: (() => void) | undefined;

  constructor(
    private readonly transport: MqttTransport,
    private readonly answer: (request: Buffer) => Buffer,
  ) {}

  start(): void {
    const { topics } = this.transport;
    this.unroute = this.transport.route(topics.healthRequest, (_topic, payload) => {
      void this.transport.publishAsync(topics.healthResponse, this.answer(payload), { qos: 1 }).catch(() => {});
    });
  }

  stop(): void {
    this.unroute?.();
  }
}
