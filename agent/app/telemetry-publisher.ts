import type { AgentConfig } from '../config/agent-config.js';
import type { ConfigOwner } from '../config/config-owners.js';
import { encodeJsonPayload, telemetrySchema } from '../mqtt/payloads.js';
import type { MqttTransport } from '../mqtt/transport.js';
import type { AgentStatus } from '../pipeline/frame-pipeline.js';

/**
 * Publishes the agent's telemetry every interval: rates and exits since the last message, battery,
 * heat, operating point. It owns `telemetryIntervalMs` of config/set.
 */
export class TelemetryPublisher implements ConfigOwner {
  readonly name = 'telemetry';
  readonly sections = ['telemetryIntervalMs'] as const;
  private timer: NodeJS.Timeout | undefined;
  private previousHistogram: number[] = [];
  private previousOffloaded = 0;
  private previousGated = 0;
  private previousReused = 0;
  private previousDropped = 0;

  constructor(
    private readonly transport: MqttTransport,
    private readonly status: () => AgentStatus,
    private intervalMs: number,
  ) {}

  start(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.publish(), this.intervalMs);
    this.timer.unref();
  }

  apply(next: AgentConfig): void {
    this.intervalMs = next.telemetryIntervalMs;
    this.start();
  }

  private publish(): void {
    const status = this.status();
    const sinceLast = status.exitHistogram.map((n, i) => n - (this.previousHistogram[i] ?? 0));
    this.previousHistogram = status.exitHistogram;
    const payload = encodeJsonPayload(telemetrySchema, {
      ts: Date.now(),
      battery: status.stateOfCharge ?? null,
      temperatureC: status.temperatureC ?? null,
      framesPerSecond: Math.min(1000, status.framesPerSecond),
      exitHistogram: sinceLast,
      operatingPoint: status.operatingPoint,
      offloaded: status.offloaded - this.previousOffloaded,
      gated: status.gated - this.previousGated,
      reused: status.reused - this.previousReused,
      dropped: status.dropped - this.previousDropped,
      ...(status.latencyMs === undefined ? {} : { latencyMs: status.latencyMs }),
      controller: status.controller.slice(0, 300),
      ...(status.wokeBy === undefined ? {} : { wokeBy: status.wokeBy }),
      ...(status.mqtt === undefined ? {} : { mqtt: status.mqtt.slice(0, 500) }),
      ...(status.plan === undefined ? {} : { plan: status.plan.slice(0, 500) }),
      ...(status.planWarning === undefined ? {} : { planWarning: status.planWarning.slice(0, 500) }),
      ...(status.sleep === undefined ? {} : { sleep: status.sleep.slice(0, 300) }),
      backend: status.backend,
      ...(status.backendNote === undefined ? {} : { backendNote: status.backendNote.slice(0, 500) }),
    });
    this.previousOffloaded = status.offloaded;
    this.previousGated = status.gated;
    this.previousReused = status.reused;
    this.previousDropped = status.dropped;
    this.transport.publish(this.transport.topics.telemetry, payload, { qos: 0 });
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
