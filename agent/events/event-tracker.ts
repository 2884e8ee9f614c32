import type { EventsConfig } from '../config/agent-config.js';
import type { EventRow } from '../store/types.js';

/**
 * Turns classified frames into events, as Frigate's `events` topic has them: an event
 * starts with motion and a confident label, gets updates while its best label or
 * confidence changes, and ends after `endAfterS` without motion. A minimum duration
 * and a switching margin keep a flickering label from making an event storm: a blip
 * shorter than `minDurationS` never becomes an event, and the best label changes only
 * when another one's accumulated confidence beats it by the margin.
 *
 * An event's confidence is the mean confidence of the frames that gave its label: what the
 * model said of the object on the whole, where the best single frame would only grow (one
 * lucky frame made an event "1.000" for good).
 */
/** What the tracker reads of the events section (documented there). */
export type EventSettings = Pick<EventsConfig, 'minConfidence' | 'endAfterS' | 'minDurationS' | 'switchMargin'>;

export interface Observation {
  /** On a clock that never steps (monotonic, or a scene's time): durations and endAfterS are measured on it. */
  at: number;
  label: string;
  confidence: number;
  exit: number;
  motion: boolean;
}

/**
 * An event as its messages carry it: the log's row, under the event's own id, without the snapshot.
 * `confidence` is the mean confidence of the frames that gave `label`; `frames` counts every frame of the event.
 */
export type EventSummary = Omit<EventRow, 'eventId' | 'snapshot'> & { id: string };

export interface EventMessage {
  type: 'new' | 'update' | 'end';
  event: EventSummary;
}

interface Tracked {
  /** Its start and end are wall-clock stamps; the end is the start plus the duration measured on the observations' clock. */
  summary: EventSummary;
  /** The first frame's time, on the observations' clock. */
  startAt: number;
  announced: boolean;
  lastMotionAt: number;
  /** Per label: the sum of its frames' confidences (the switching score), and how many frames gave it. */
  scores: Map<string, number>;
  counts: Map<string, number>;
  /** Per label: its most confident frame's, for the snapshot. */
  bestConfidence: Map<string, number>;
  lastUpdateAt: number;
  /** What the last new or update message said. */
  sent: { label: string; confidence: number };
}

/** Updates are sent at most this often, and only for a change this large in confidence (a mean falls as well as rises). */
const UPDATE_EVERY_MS = 1000;
const CONFIDENCE_STEP = 0.05;

export class EventTracker {
  private current: Tracked | undefined;
  private sequence = 0;

  /** `stamp` gives the wall-clock time of an observation's `at` (identity when `at` already is one, as in a replay on scene time). */
  constructor(
    private settings: EventSettings,
    private readonly exitCount: number,
    private readonly stamp: (at: number) => number = (at) => at,
  ) {}

  update(settings: EventSettings): void {
    this.settings = settings;
  }

  /** The event going on (announced or not yet), for status. */
  /** Whether an event is going on, announced yet or not. */
  get open(): boolean {
    return this.current !== undefined;
  }

  get active(): EventSummary | undefined {
    return this.current?.announced ? { ...this.current.summary } : undefined;
  }

  /**
   * A classified frame. Returns the messages it causes, and whether this frame is now
   * the event's best (the one its snapshot should show).
   */
  observe(frame: Observation): { messages: EventMessage[]; best: boolean } {
    const messages = this.expire(frame.at);
    if (!this.current) {
      if (!frame.motion || frame.confidence < this.settings.minConfidence) return { messages, best: false };
      const start = this.stamp(frame.at);
      this.current = {
        startAt: frame.at,
        summary: { id: `${start.toString(36)}-${(++this.sequence).toString(36)}`, start, end: null, label: frame.label, confidence: 0, frames: 0, exits: new Array<number>(this.exitCount).fill(0) },
        announced: false,
        lastMotionAt: frame.at,
        scores: new Map(),
        counts: new Map(),
        bestConfidence: new Map(),
        lastUpdateAt: frame.at,
        sent: { label: frame.label, confidence: 0 },
      };
    }
    const tracked = this.current;
    const event = tracked.summary;
    if (frame.motion) tracked.lastMotionAt = frame.at;
    event.frames++;
    event.exits[frame.exit] = (event.exits[frame.exit] ?? 0) + 1;
    tracked.scores.set(frame.label, (tracked.scores.get(frame.label) ?? 0) + frame.confidence);
    tracked.counts.set(frame.label, (tracked.counts.get(frame.label) ?? 0) + 1);
    const previousBest = tracked.bestConfidence.get(frame.label) ?? 0;
    if (frame.confidence > previousBest) tracked.bestConfidence.set(frame.label, frame.confidence);

    const leader = [...tracked.scores].reduce((a, b) => (b[1] > a[1] ? b : a));
    if (leader[0] !== event.label && leader[1] > (tracked.scores.get(event.label) ?? 0) * (1 + this.settings.switchMargin)) event.label = leader[0];
    event.confidence = (tracked.scores.get(event.label) ?? 0) / (tracked.counts.get(event.label) ?? 1);
    const best = frame.label === event.label && frame.confidence >= (tracked.bestConfidence.get(event.label) ?? 0);

    const send = (type: 'new' | 'update') => {
      tracked.lastUpdateAt = frame.at;
      tracked.sent = { label: event.label, confidence: event.confidence };
      messages.push({ type, event: { ...event, exits: [...event.exits] } });
    };
    if (!tracked.announced) {
      if (this.lastedLongEnough(tracked, frame.at)) {
        tracked.announced = true;
        send('new');
      }
    } else if (frame.at - tracked.lastUpdateAt >= UPDATE_EVERY_MS && (event.label !== tracked.sent.label || Math.abs(event.confidence - tracked.sent.confidence) >= CONFIDENCE_STEP)) {
      send('update');
    }
    return { messages, best };
  }

  /**
   * A frame the gate passed (nothing moved): it may end the event, or announce one whose
   * object came in and stood still (the background learns it within a second or so).
   */
  still(at: number): EventMessage[] {
    const messages = this.expire(at);
    const tracked = this.current;
    if (tracked && !tracked.announced && this.lastedLongEnough(tracked, at)) {
      tracked.announced = true;
      tracked.lastUpdateAt = at;
      tracked.sent = { label: tracked.summary.label, confidence: tracked.summary.confidence };
      messages.push({ type: 'new', event: { ...tracked.summary, exits: [...tracked.summary.exits] } });
    }
    return messages;
  }

  /** Long enough to be an event, and seen on more than one frame: a one-frame blip never is. */
  private lastedLongEnough(tracked: Tracked, at: number): boolean {
    return at - tracked.startAt >= this.settings.minDurationS * 1000 && tracked.summary.frames >= 2;
  }

  /** Ends what is going on (the agent stops). */
  finish(at: number): EventMessage[] {
    if (!this.current) return [];
    const tracked = this.current;
    this.current = undefined;
    return tracked.announced ? [this.ended(tracked, Math.min(at, tracked.lastMotionAt + this.settings.endAfterS * 1000))] : [];
  }

  private expire(at: number): EventMessage[] {
    if (!this.current || at - this.current.lastMotionAt < this.settings.endAfterS * 1000) return [];
    const tracked = this.current;
    this.current = undefined;
    return tracked.announced ? [this.ended(tracked, tracked.lastMotionAt)] : [];
  }

  /** The end stamp is the start stamp plus the duration: a step of the wall clock meanwhile cannot make it negative. */
  private ended(tracked: Tracked, endAt: number): EventMessage {
    return { type: 'end', event: { ...tracked.summary, end: tracked.summary.start + Math.round(endAt - tracked.startAt), exits: [...tracked.summary.exits] } };
  }
}
