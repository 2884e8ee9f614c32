import type { AgentConfig } from '../../config/agent-config.js';
import type { IPublishPacket } from 'mqtt';
import { logger } from '../../../common/log/logger.js';
import { throttledWarning } from '../../../common/log/throttled.js';
import { answerMatchesModel, offloadModelHashPrefix, parseOffloadAnswer, SERVER_ID_PROPERTY, type OffloadAnswer } from '../offload-codec.js';
import type { Outbox } from '../outbox.js';
import { logExcerpt } from '../payloads.js';
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

/** Requests this gateway made that an answer may still be for (late answers are logged too): the newest this many. */
const REQUESTS_REMEMBERED = 10_000;

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
  /** Request id → the model hash prefix it was sent with, for the requests an answer may be for. */
  private readonly requested = new Map<string, string | undefined>();
  /** One line a minute however many answers are refused: each is a message from the network. */
  private readonly warnRefused = throttledWarning();
  /** Offload server workers whose retained availability says `online`. */
  private readonly serversOnline = new Set<string>();
  /** Waiting in settle() for the last unanswered request to be answered. */
  private settledWaiters: Array<() => void> = [];
  private sweeper: NodeJS.Timeout | undefined;
  private readonly undo: Array<() => void> = [];
  readonly counters = { sent: 0, resent: 0, queued: 0, expired: 0, droppedFull: 0, answers: 0, lateAnswers: 0, duplicateAnswers: 0, deadlinesMissed: 0, refusedAnswers: 0 };

  constructor(
    private readonly transport: MqttTransport,
    /** The deadline, queue bound and expiry in force: remote config changes them live (updateOffload). */
    private settings: AgentConfig['offload'],
    private readonly onAnswer: (requestId: string, answer: OffloadAnswer, late: boolean) => void,
    /** Keeps unanswered requests on disk across restarts; in memory only without it. */
    private readonly outbox?: Outbox,
    /** The package's labels: an answer naming another is refused. Without them, any label is taken. */
    private readonly labels?: readonly string[],
  ) {
    for (const item of outbox?.all() ?? []) {
      this.pending.set(item.requestId, { ...item, sentAt: undefined });
      this.requested.set(item.requestId, offloadModelHashPrefix(item.frame));
    }
    // A clean session resends the retained availabilities on the next subscribe; until then nothing is known.
    transport.onClose(() => this.serversOnline.clear());
  }

  start(): void {
    const { topics } = this.transport;
    this.undo.push(
      this.transport.route(topics.offloadResponseFilter, (topic, payload, packet) => this.onResponse(topic, payload, packet)),
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

  private refuse(topic: string, why: string): void {
    this.counters.refusedAnswers++;
    // The topic and the reason may quote the sender's text: only a short escaped excerpt is logged.
    this.warnRefused(`mqtt: refused an offload answer on ${logExcerpt(topic, 120)}: ${logExcerpt(why, 160)} (${this.counters.refusedAnswers} refused so far)`);
  }

  /**
   * Anyone who may publish to the answer topic could answer, so an answer is taken only when
   * it is for a request this gateway sent, for the model it was sent with, with one of the
   * package's labels, from a server that announced itself (by name when it names itself:
   * MQTT 5 answers carry its id as a user property), and, with MQTT 5, with the request's
   * correlation data. None of this proves who sent it: only a signature would.
   */
  private onResponse(topic: string, payload: Buffer, packet?: IPublishPacket): void {
    const requestId = requestIdFromOffloadResponse(topic, this.transport.topics);
    // Only this device's answer topics are answers; a server availability topic goes to onAvailability alone.
    if (!requestId || serverIdFromAvailability(topic, this.transport.topics.prefix) !== undefined) return this.refuse(topic, 'not an answer topic of this gateway');
    const parsed = parseOffloadAnswer(payload);
    if (!parsed.ok) return this.refuse(topic, parsed.reason);
    const { answer } = parsed;
    if (answer.requestId !== requestId) return this.refuse(topic, 'its request id does not match the topic');
    if (this.answered.has(requestId)) {
      this.counters.duplicateAnswers++;
      return;
    }
    if (!this.requested.has(requestId)) return this.refuse(topic, 'this gateway sent no request with that id');
    const named = packet?.properties?.userProperties?.[SERVER_ID_PROPERTY];
    const serverId = Array.isArray(named) ? named[0] : named;
    if (serverId !== undefined ? !this.serversOnline.has(serverId) : this.serversOnline.size === 0) {
      return this.refuse(topic, serverId !== undefined ? `server ${serverId} has not announced itself` : 'no offload server has announced itself');
    }
    const correlation = packet?.properties?.correlationData;
    if (correlation !== undefined && !Buffer.from(correlation).equals(Buffer.from(requestId))) return this.refuse(topic, 'its correlation data is not the request\'s');
    const modelHashPrefix = this.requested.get(requestId);
    if (modelHashPrefix !== undefined && !answerMatchesModel(answer, modelHashPrefix)) return this.refuse(topic, `it is for model ${answer.modelHash.slice(0, 16)}, the request was for ${modelHashPrefix}`);
    if (this.labels && !this.labels.includes(answer.label)) return this.refuse(topic, `its label ${answer.label} is not one of the package's`);
    this.answered.add(requestId);
    this.forget(requestId);
    if (this.answered.size > 100_000) this.answered.delete(this.answered.values().next().value!);
    const late = !this.deadlines.has(requestId);
    this.deadlines.delete(requestId);
    this.counters.answers++;
    if (late) this.counters.lateAnswers++;
    this.onAnswer(requestId, answer, late);
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
    this.requested.set(requestId, offloadModelHashPrefix(frame));
    if (this.requested.size > REQUESTS_REMEMBERED) this.requested.delete(this.requested.keys().next().value!);
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
