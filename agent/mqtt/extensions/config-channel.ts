import { configResponseSchema, configSetRequestId, encodeJsonPayload, leadingRequestId } from '../payloads.js';
import { SlicedQueue } from '../sliced-queue.js';
import type { MqttTransport } from '../transport.js';

/** What handles a config/set (remote-config.ts): the response and, when accepted, the new retained state. */
export interface ConfigSetHandler {
  handleSet(bytes: Buffer): { response: Buffer; state: Buffer | undefined };
  /** The retained config/state to publish on every (re)connect. */
  stateMessage(): Buffer;
}

/**
 * config/set gets at most a fifth of the event loop in a burst (2 ms slices, 8 ms pauses):
 * an operator sends a few a minute, and a flood must not take the frame loop's time.
 */
const CONFIG_SET_PACING = { sliceMs: 2, pauseMs: 8, limit: 500 };

/**
 * Ids of applied requests are remembered this long, and at most this many: a replayed
 * request (the same id, perhaps with a new value) must not undo a later change. Every
 * config/set has an id (the schema requires one), so none escapes this. Refused requests
 * are not remembered: they changed nothing, and the sender may fix one and send it again.
 */
export const REPLAY_WINDOW = { ids: 1000, ms: 24 * 3600_000 };

export const RETAINED_REFUSAL = 'config/set: retained config/set requests are not applied; publish without retain';

/** config/set in (paced), config/response out, and the retained config/state on every connect. */
export class ConfigChannel {
  private readonly undo: Array<() => void> = [];
  /** Applied request ids and when, oldest first (REPLAY_WINDOW). */
  private readonly applied = new Map<string, number>();
  private readonly requests = new SlicedQueue<Buffer>({
    ...CONFIG_SET_PACING,
    handle: (payload) => void this.setFrom(payload),
    overflow: (payload) => {
      const id = leadingRequestId(payload);
      this.respondError(id ?? null, `config/set: ${CONFIG_SET_PACING.limit} requests are already waiting; send fewer, and wait for each answer`);
    },
  });

  /** Requests that came before start(): held, not handled, until every part a change can reach exists. */
  private readonly held: Buffer[] = [];
  private open = false;

  constructor(
    private readonly transport: MqttTransport,
    private readonly handler: ConfigSetHandler,
    private readonly now: () => number = Date.now,
  ) {
    // Routed from the first connect, so that a request sent as soon as the agent is connected is not lost
    // for want of a subscription; start() opens the channel once the parts it reaches exist.
    this.undo.push(
      this.transport.route(transport.topics.configSet, (_topic, payload, packet) => {
        // The broker marks a message retained only when it replays a stored one (on every
        // subscribe, so every reconnect): applying it would undo whatever changed since.
        if (packet?.retain) this.respondError(configSetRequestId(payload) ?? null, RETAINED_REFUSAL);
        else this.submit(payload);
      }),
    );
  }

  start(): void {
    const { topics } = this.transport;
    this.open = true;
    for (const payload of this.held.splice(0)) this.requests.push(payload);
    this.undo.push(this.transport.onConnect(() => this.transport.publishAsync(topics.configState, this.handler.stateMessage(), { qos: 1, retain: true })));
    // Started on a connected link: the state in force now, not at the next connect.
    if (this.transport.connected) void this.transport.publishAsync(topics.configState, this.handler.stateMessage(), { qos: 1, retain: true }).catch(() => {});
  }

  stop(): void {
    this.open = false;
    this.held.length = 0;
    this.requests.clear();
    for (const undo of this.undo.splice(0)) undo();
  }

  /** A request in the paced queue, as one from config/set (Home Assistant's commands come this way). */
  submit(payload: Buffer): void {
    if (this.open) this.requests.push(payload);
    else if (this.held.length < CONFIG_SET_PACING.limit) this.held.push(payload);
    else this.respondError(leadingRequestId(payload) ?? null, `config/set: ${CONFIG_SET_PACING.limit} requests are already waiting for the agent to start; send fewer, and wait for each answer`);
  }

  /** config/set messages received and not yet handled. */
  get waiting(): number {
    return this.requests.waiting + this.held.length;
  }

  /**
   * A config/set handled at once (the paced queue, and the dashboard's front door): published
   * as one from MQTT would be (response, retained state), and the response returned.
   */
  setFrom(payload: Buffer): Buffer {
    const id = configSetRequestId(payload);
    const now = this.now();
    this.forgetOld(now);
    if (id !== undefined && this.applied.has(id)) {
      const response = encodeJsonPayload(configResponseSchema, { id, status: 'error', reason: `config/set: request id ${id} was already applied; a replayed request is not applied again, send each change with a new id` });
      this.respond(response);
      return response;
    }
    const handled = this.handler.handleSet(payload);
    if (id !== undefined && (JSON.parse(handled.response.toString()) as { status: string }).status === 'ok') {
      this.applied.set(id, now);
      this.forgetOld(now);
    }
    this.respond(handled.response);
    if (handled.state) void this.transport.publishAsync(this.transport.topics.configState, handled.state, { qos: 1, retain: true }).catch(() => {});
    return handled.response;
  }

  private forgetOld(now: number): void {
    for (const [id, at] of this.applied) {
      if (this.applied.size <= REPLAY_WINDOW.ids && at > now - REPLAY_WINDOW.ms) break;
      this.applied.delete(id);
    }
  }

  respondError(id: string | null, reason: string): void {
    this.respond(encodeJsonPayload(configResponseSchema, { id, status: 'error', reason }));
  }

  private respond(response: Buffer): void {
    void this.transport.publishAsync(this.transport.topics.configResponse, response, { qos: 1 }).catch(() => {});
  }
}
