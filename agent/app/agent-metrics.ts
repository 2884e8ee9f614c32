/**
 * The agent's metrics in Prometheus' text format (as Frigate's `/api/metrics`), served on
 * `/metrics` by the web server. Values are read from the pipeline's own totals at scrape
 * time: nothing runs per frame.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AgentStatus } from '../pipeline/frame-pipeline.js';

export interface MetricsSources {
  status(): AgentStatus;
  /** "ok", or why the log fails. */
  logHealth(): string;
  mqttConnected(): boolean;
  /** The MQTT link's offload counters and the requests it holds (in memory and the outbox). */
  offload(): { counters: Record<'sent' | 'answers' | 'lateAnswers' | 'deadlinesMissed' | 'expired' | 'droppedFull', number>; unanswered: number };
}

/** Segment times run from tenths of a millisecond (a Coral, a small cut) to a few hundred (a Pi Zero, the full model). */
const SEGMENT_BUCKETS_S = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5];

export class AgentMetrics {
  private readonly registry = new Registry();
  private readonly segmentSeconds: Histogram<'segment'>;

  constructor(sources: MetricsSources) {
    const registry = this.registry;
    // Memory, CPU, event-loop lag and descriptors of the agent's process.
    collectDefaultMetrics({ register: registry });
    // Counters are read from totals the agent keeps anyway, at scrape time.
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const totals = (name: string, help: string, read: (status: AgentStatus) => number) => counter(name, help, () => read(sources.status()));
    totals('edge_exit_frames_total', 'Frames the model ran on', (s) => s.frames);
    totals('edge_exit_gated_frames_total', 'Frames the motion gate let stand without inference', (s) => s.gated);
    totals('edge_exit_reused_frames_total', 'Frames an earlier exit settled by agreeing with a confident previous answer (temporal exit reuse)', (s) => s.reused);
    totals('edge_exit_offloaded_frames_total', 'Frames offloaded to the server', (s) => s.offloaded);
    totals('edge_exit_skipped_frames_total', 'Frames that could not be decoded', (s) => s.skipped);
    totals('edge_exit_dropped_frames_total', 'Stream frames a newer one replaced before the agent took them', (s) => s.dropped);
    new Counter({
      name: 'edge_exit_exit_frames_total',
      help: 'Frames by the exit they left at',
      labelNames: ['exit'],
      registers: [registry],
      collect() {
        this.reset();
        sources.status().exitHistogram.forEach((count, exit) => this.inc({ exit: String(exit) }, count));
      },
    });
    const gauge = (name: string, help: string, read: (status: AgentStatus) => number | undefined) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          const value = read(sources.status());
          if (value === undefined) this.reset();
          else this.set(value);
        },
      });
    const offloadTotal = (name: string, help: string, field: keyof ReturnType<MetricsSources['offload']>['counters']) =>
      counter(name, help, () => sources.offload().counters[field]);
    offloadTotal('edge_exit_offload_requests_total', 'Offload requests sent to the broker (first sends)', 'sent');
    offloadTotal('edge_exit_offload_answers_total', 'Server answers received', 'answers');
    offloadTotal('edge_exit_offload_timeouts_total', 'Requests whose deadline passed without an answer (the device answer stood)', 'deadlinesMissed');
    offloadTotal('edge_exit_offload_late_answers_total', 'Answers that came after the deadline (logged, not used)', 'lateAnswers');
    offloadTotal('edge_exit_offload_expired_total', 'Requests given up unanswered after the queue expiry', 'expired');
    offloadTotal('edge_exit_offload_dropped_total', 'Requests dropped because the queue was full', 'droppedFull');
    this.segmentSeconds = new Histogram({ name: 'edge_exit_segment_seconds', help: 'Time per backbone segment run', labelNames: ['segment'], buckets: SEGMENT_BUCKETS_S, registers: [registry] });
    gauge('edge_exit_outbox_depth', 'Offload requests waiting for an answer (in memory and in the outbox)', () => sources.offload().unanswered);
    gauge('edge_exit_offload_servers_up', 'Offload servers that say they are up', (s) => s.offloadServers);
    gauge('edge_exit_frames_per_second', 'Frames classified per second, recently', (s) => s.framesPerSecond);
    gauge('edge_exit_battery_ratio', 'Battery state of charge (0-1)', (s) => s.stateOfCharge);
    gauge('edge_exit_temperature_celsius', 'Hottest temperature sensor', (s) => s.temperatureC);
    gauge('edge_exit_latency_p95_seconds', 'Capture to result, 95th percentile over the latest frames', (s) => (s.latencyMs ? s.latencyMs.p95 / 1000 : undefined));
    gauge('edge_exit_mqtt_connected', 'Whether the MQTT link is up (1) or not (0)', () => (sources.mqttConnected() ? 1 : 0));
    gauge('edge_exit_log_ok', 'Whether the SQLite log writes (1) or fails (0)', () => (sources.logHealth() === 'ok' ? 1 : 0));
    const info = (name: string, help: string, label: string, read: (status: AgentStatus) => string) =>
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          this.reset();
          this.set({ [label]: read(sources.status()) }, 1);
        },
      });
    info('edge_exit_operating_point_info', 'The operating point in use (the label), always 1', 'point', (s) => s.operatingPoint);
    info('edge_exit_backend_info', 'What the model segments run on (edgetpu, xnnpack, stock), always 1', 'backend', (s) => s.backend);
  }

  /** One frame's segment times (ms); segments after its exit did not run, and skipped ones took 0. */
  observeSegments(segmentMs: readonly number[], exit: number): void {
    for (let i = 0; i <= exit; i++) {
      const ms = segmentMs[i]!;
      if (ms > 0) this.segmentSeconds.observe({ segment: String(i) }, ms / 1000);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
