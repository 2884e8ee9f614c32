import sharp from 'sharp';
import type { EventsConfig } from '../config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import type { AgentLink } from '../mqtt/agent-link.js';
import { encodeJsonPayload, eventMessageSchema, stateSchema, type DeviceState } from '../mqtt/payloads.js';
import type { LogStore } from '../store/log-store.js';
import { monotonicMs, wallAtMs } from '../../firmware-bridge/clock.js';
import { EventTracker, type EventMessage, type EventSummary } from './event-tracker.js';

/**
 * Where results leave the device: the retained state, events with their snapshot,
 * and the events table of the log. The pipeline tells it what each frame concluded;
 * an offload answer may then overrule the device.
 */
export interface ClassifiedFrame {
  /** On the results clock (monotonic on a gateway): intervals and durations are measured on it. */
  at: number;
  label: string;
  confidence: number;
  exit: number;
  /** Whether the motion gate saw change (always true without a gate). */
  motion: boolean;
  /** The frame as the model saw it, for the snapshot. */
  rgb: Uint8Array;
  requestId?: string;
}

export interface ResultPublisherOptions {
  link: AgentLink | undefined;
  log: Pick<LogStore, 'logEvent'>;
  /** Events follow the motion gate: without one, only the state is published. */
  events: EventsConfig | undefined;
  exitCount: number;
  /** An event ended, lasting this long: the lifetime planner learns the activity from it. */
  onEventEnd?: (durationS: number) => void;
  /** The frame size the snapshots have (the model input). */
  frameSize: { width: number; height: number };
  /**
   * The results clock, for the times taken here (an answer, events turned off, the stop): monotonic by
   * default, as the pipeline's. A benchmark on scene time gives its own, with `stamp` the identity.
   */
  now?: () => number;
  /** The wall-clock stamp of a time on the results clock, for state and event rows (default: that of a monotonic time). */
  stamp?: (at: number) => number;
}

/** The state is republished at most this often while only its confidence moves. */
const STATE_REFRESH_MS = 5000;
/**
 * A new label goes out at once, but at most this often (wall clock): a replay or a busy scene can change
 * the label at every frame, hundreds a second, and the retained state only needs to end up the latest.
 * The last state of a burst goes out when the interval ends.
 */
const STATE_MIN_INTERVAL_MS = 100;

export class ResultPublisher {
  private tracker: EventTracker | undefined;
  private state: DeviceState | undefined;
  /** On the results clock: the retained state is refreshed every STATE_REFRESH_MS. */
  private lastStatePublishedAt = -Infinity;
  /** The state's time on the results clock (its `at` is the wall-clock stamp). */
  private stateAt = -Infinity;
  private lastStateSentWallMs = -Infinity;
  /** The latest state waits for the end of the minimum interval. */
  private stateTimer: NodeJS.Timeout | undefined;
  /** The request id of the frame the state came from, so that its server answer can overrule it. */
  private stateRequestId: string | undefined;
  private bestFrame: Uint8Array | undefined;
  private readonly previous = new Map<string, EventSummary>();
  /** Snapshots encode off the frame path, one after another. */
  private snapshotChain: Promise<void> = Promise.resolve();
  private settings: EventsConfig | undefined;
  /** Event rows and snapshots queued and not yet written. */
  private writesPending = 0;
  /** The snapshot last taken (what the retained snapshot topic holds), for the dashboard. */
  latestSnapshot: { jpeg: Buffer; at: number } | undefined;

  private readonly now: () => number;
  private readonly stamp: (at: number) => number;

  constructor(private readonly options: ResultPublisherOptions) {
    this.now = options.now ?? monotonicMs;
    this.stamp = options.stamp ?? ((at) => Math.round(wallAtMs(at)));
    this.setEvents(options.events);
  }

  /** Events on (with these settings) or off; an event going on is ended when they are turned off. */
  setEvents(settings: EventsConfig | undefined): void {
    this.settings = settings;
    if (!settings) {
      if (this.tracker) this.send(this.tracker.finish(this.now()));
      this.tracker = undefined;
      return;
    }
    if (this.tracker) this.tracker.update(settings);
    else this.tracker = new EventTracker(settings, this.options.exitCount, this.stamp);
  }

  /** What the device concluded last, for status. */
  get currentState(): DeviceState | undefined {
    return this.state;
  }

  /** Events going on, for status. */
  get activeEvent(): EventSummary | undefined {
    return this.tracker?.active;
  }

  classified(frame: ClassifiedFrame): void {
    this.updateState({ label: frame.label, confidence: frame.confidence, exit: frame.exit, decidedBy: 'device' }, frame.at);
    this.stateRequestId = frame.requestId;
    if (!this.tracker) return;
    const { messages, best } = this.tracker.observe(frame);
    if (best && this.settings?.snapshots) this.bestFrame = Uint8Array.from(frame.rgb);
    this.send(messages);
  }

  /** A frame the gate let stand: the state holds, and an event may end. */
  still(at: number): void {
    if (this.tracker) this.send(this.tracker.still(at));
  }

  /** The offload server answered: when it is about the frame the state came from, it overrules the device. */
  serverAnswer(requestId: string, label: string, confidence: number, exit: number): void {
    if (requestId !== this.stateRequestId || !this.state) return;
    this.updateState({ label, confidence, exit, decidedBy: 'server' }, this.now());
  }

  /** Whether an event is going on, even one too young to be announced: a sleep would cut it. */
  get eventOpen(): boolean {
    return this.tracker?.open ?? false;
  }

  /** Whether an event row or snapshot is still being made or written: the board must not power down under it. */
  get busy(): boolean {
    return this.writesPending > 0;
  }

  /** Ends the event going on and waits for its snapshot (the agent stops). */
  async stop(at = this.now()): Promise<void> {
    if (this.stateTimer) this.publishState();
    if (this.tracker) this.send(this.tracker.finish(at));
    await this.snapshotChain;
  }

  private updateState(next: Pick<DeviceState, 'label' | 'confidence' | 'exit' | 'decidedBy'>, at: number): void {
    const changed = !this.state || this.state.label !== next.label || this.state.decidedBy !== next.decidedBy;
    const stamp = Math.trunc(this.stamp(at));
    this.state = { ...next, confidence: Math.min(1, Math.max(0, next.confidence)), since: changed ? stamp : this.state!.since, at: stamp };
    this.stateAt = at;
    // A new label is said at once; the same label again only now and then, so the retained state stays fresh without a message per frame.
    if (!changed && this.stateTimer === undefined && at - this.lastStatePublishedAt < STATE_REFRESH_MS) return;
    const wait = this.lastStateSentWallMs + STATE_MIN_INTERVAL_MS - performance.now();
    if (wait <= 0) this.publishState();
    else this.stateTimer ??= setTimeout(() => this.publishState(), wait);
  }

  private publishState(): void {
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
    this.lastStatePublishedAt = this.stateAt;
    this.lastStateSentWallMs = performance.now();
    this.options.link?.publishRetained('state', encodeJsonPayload(stateSchema, this.state!));
  }

  private send(messages: EventMessage[]): void {
    for (const message of messages) {
      const before = this.previous.get(message.event.id) ?? null;
      if (message.type === 'end') this.previous.delete(message.event.id);
      else this.previous.set(message.event.id, message.event);
      this.options.link?.publishEvent(encodeJsonPayload(eventMessageSchema, { type: message.type, before, after: message.event }));
      const row = { eventId: message.event.id, start: message.event.start, end: message.event.end, label: message.event.label, confidence: message.event.confidence, frames: message.event.frames, exits: message.event.exits };
      // The snapshot goes with the announcement and the end: the best frame so far, then the best of all.
      const frame = message.type === 'update' || !this.settings?.snapshots ? undefined : this.bestFrame;
      if (message.type === 'end') {
        this.bestFrame = undefined;
        this.options.onEventEnd?.(((message.event.end ?? message.event.start) - message.event.start) / 1000);
      }
      this.writesPending++;
      // Rows go through one chain, so that an event's rows are written in the order of its messages.
      this.snapshotChain = this.snapshotChain.then(async () => {
        let snapshot: Buffer | undefined;
        if (frame) {
          try {
            snapshot = await sharp(frame, { raw: { ...this.options.frameSize, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
            this.options.link?.publishRetained('snapshot', snapshot);
            this.latestSnapshot = { jpeg: snapshot, at: Date.now() };
          } catch (error) {
            logger.warn(`event ${row.eventId}: the snapshot could not be made (${(error as Error).message}); the event is logged without it`);
          }
        }
        try {
          this.options.log.logEvent(snapshot ? { ...row, snapshot } : row);
        } finally {
          this.writesPending--;
        }
      });
    }
  }
}
