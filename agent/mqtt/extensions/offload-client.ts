import type { AgentConfig } from '../../config/agent-config.js';
import { logger } from '../../../common/log/logger.js';
import { parseOffloadAnswer, type OffloadAnswer } from '../offload-codec.js';
import type { Outbox } from '../outbox.js';
import { AVAILABILITY_ONLINE, requestIdFromOffloadResponse, serverAvailabilityFilter, serverIdFromAvailability } from '../topics.js';
import type { MqttTransport } from '../transport.js';

interface Pending {
  requestId: string;
  frame: Buffer;
  queuedAt: number;
  /** When it last went to the broker; undefined while it has not been sent yet. */
  sentAt: number | undefined;
}

/** An unanswered request is sent again this often (the server answers a repeat from its cache). */
const RESEND_AFTER_MS = 2000;

/**
 * The offload side of MQTT: requests with deadlines, kept in a bounded queue (and the outbox on
 * disk) while the broker is away and sent again after a silence; answers matched to them; and
 * which offload servers say they are up (their retained availability).
 */
export class OffloadClient {
  /** Requests not yet answered, oldest first: sent again after a reconnect or a silence, until answered or expired. */
  private readonly pending = new Map<string, Pending>();
  private readonly deadlines = new Map<string, number>();
  private readonly answered = new Set<string>();
  /** Offload server workers whose retained availability says `online`. */
  private readonly serversOnline = new Set<string>();
  /** Waiting in settle() for the last unanswered request to be answered. */
  private settledWaiters: Array<() => void> = [];
  private sweeper: NodeJS.Timeout | undefined;
  private readonly undo: Array<() => void> = [];
  readonly counters = { sent: 0, resent: 0, queued: 0, expired: 0, droppedFull: 0, answers: 0, lateAnswers: 0, duplicateAnswers: 0, deadlinesMissed: 0 };

  constructor(
    private readonly transport: MqttTransport,
    /** The deadline, queue bound and expiry in force: remote config changes them live (updateOffload). */
    private settings: AgentConfig['offload'],
    private readonly onAnswer: (requestId: string, answer: OffloadAnswer, late: boolean) => void,
    /** Keeps unanswered requests on disk across restarts; in memory only without it. */
    private readonly outbox?: Outbox,
  ) {
    for (const item of outbox?.all() ?? []) this.pending.set(item.requestId, { ...item, sentAt: undefined });
    // A clean session resends the retained availabilities on the next subscribe; until then nothing is known.
    transport.onClose(() => this.serversOnline.clear());
  }

  start(): void {
    const { topics } = this.transport;
    this.undo.push(
      this.transport.route(topics.offloadResponseFilter, (topic, payload) => this.onResponse(topic, payload)),
      this.transport.route(serverAvailabilityFilter(topics.prefix), (topic, payload) => this.onAvailability(topic, payload)),
      // Sends what waited while the broker was away.
      this.transport.onConnect(async () => this.sweep()),
    );
    this.sweeper = setInterval(() => this.sweep(), 100);
    this.sweeper.unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
    for (const undo of this.undo.splice(0)) undo();
  }

  /** Offload server workers known to be up; 0 while the broker is away. */
  get offloadServers(): number {
    // Read on every controller step: a count, not the sorted list below.
    return this.transport.connected ? this.serversOnline.size : 0;
  }

  /** The ids of the offload servers that say they are up, sorted; none while the link is down. */
  get offloadServerIds(): string[] {
    return this.transport.connected ? [...this.serversOnline].sort() : [];
  }

  private onAvailability(topic: string, payload: Buffer): void {
    const serverId = serverIdFromAvailability(topic, this.transport.topics.prefix);
    if (serverId === undefined) return;
    const online = payload.toString() === AVAILABILITY_ONLINE;
    if (online !== this.serversOnline.has(serverId)) logger.info(`mqtt: offload server ${serverId} is ${online ? 'up' : 'gone'}`);
    if (online) this.serversOnline.add(serverId);
    else this.serversOnline.delete(serverId);
  }

  private onResponse(topic: string, payload: Buffer): void {
    const requestId = requestIdFromOffloadResponse(topic, this.transport.topics);
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
    this.onAnswer(requestId, parsed.answer, late);
  }

  private publishOffload(item: Pending, now = Date.now()): void {
    if (item.sentAt !== undefined) this.counters.resent++;
    else this.counters.sent++;
    item.sentAt = now;
    const { topics } = this.transport;
    const properties = this.transport.protocolVersion === 5 ? { properties: { responseTopic: topics.offloadResponse(item.requestId), correlationData: Buffer.from(item.requestId) } } : {};
    this.transport.publish(topics.offloadRequest, item.frame, { qos: 1, ...properties }, (error) => logger.warn(`mqtt: offload ${item.requestId} not sent: ${error.message}`));
  }

  /** Remote config changed the offload settings; requests already made keep their deadlines. */
  updateOffload(settings: AgentConfig['offload']): void {
    this.settings = settings;
  }

  /** Sends now, or keeps it while disconnected; the deadline runs from now either way. */
  offload(requestId: string, frame: Buffer, now = Date.now()): 'sent' | 'queued' | 'dropped' {
    this.deadlines.set(requestId, now + this.settings.deadlineMs);
    if (this.pending.size >= this.settings.maxQueued) {
      const oldest = this.pending.keys().next().value;
      if (oldest === undefined) return 'dropped';
      this.forget(oldest);
      this.counters.droppedFull++;
    }
    const item: Pending = { requestId, frame, queuedAt: now, sentAt: undefined };
    this.pending.set(requestId, item);
    this.remember(item);
    if (this.transport.connected) {
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
    const expiry = this.settings.queueExpiryMs;
    for (const item of this.pending.values()) {
      if (item.queuedAt + expiry <= now) {
        this.forget(item.requestId);
        this.counters.expired++;
      } else if (this.transport.connected && (item.sentAt === undefined || item.sentAt + RESEND_AFTER_MS <= now)) {
        this.publishOffload(item, now);
      }
    }
  }

  /** A failing outbox write costs durability, not the request: it stays in memory. */
  private remember(item: Pending): void {
    try {
      this.outbox?.add(item);
    } catch (error) {
      logger.warn(`offload outbox: ${item.requestId} kept in memory only: ${(error as Error).message}`);
    }
  }

  private forget(requestId: string): void {
    this.pending.delete(requestId);
    if (this.pending.size === 0) for (const settled of this.settledWaiters.splice(0)) settled();
    try {
      this.outbox?.delete(requestId);
    } catch (error) {
      logger.warn(`offload outbox: could not remove ${requestId}: ${(error as Error).message}`);
    }
  }

  get queuedCount(): number {
    let waiting = 0;
    for (const item of this.pending.values()) if (item.sentAt === undefined) waiting++;
    return waiting;
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
    if (this.pending.size === 0 || !this.transport.connected) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.settledWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
