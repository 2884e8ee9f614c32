import { z } from 'zod';
import { offloadModeSchema } from '../config/agent-config.js';
import { configPatchSchema, definedOnly, describeIssuesReason, MAX_REASON_LENGTH, shortenReason } from '../config/config-patch.js';
import { WAKE_REASONS } from '../../firmware-bridge/types.js';

/** A config/set is a handful of fields; anything bigger is a mistake or an attack. */
export const MAX_CONFIG_SET_BYTES = 16 * 1024;
export type JsonDecodeResult = { ok: true; value: unknown } | { ok: false; reason: string };

/**
 * Untrusted text (a payload, a topic, a reason quoting one) as it may appear in a log line:
 * at most `max` characters, quoted, with everything outside printable ASCII escaped, so a
 * sender can neither flood the log nor forge lines or terminal escapes in it.
 */
export function logExcerpt(text: string, max = 60): string {
  const cut = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(cut).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Bytes → JSON value, never throwing: size first (cheap), then strict UTF-8, then JSON. */
export function decodeJsonPayload(bytes: unknown, maxBytes: number, what: string): JsonDecodeResult {
  if (!(bytes instanceof Uint8Array)) return { ok: false, reason: `${what}: payload must be bytes, got ${bytes === null ? 'null' : typeof bytes}` };
  if (bytes.byteLength === 0) return { ok: false, reason: `${what}: payload is empty` };
  if (bytes.byteLength > maxBytes) return { ok: false, reason: `${what}: payload is ${bytes.byteLength} bytes, at most ${maxBytes} are allowed` };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, reason: `${what}: payload is not valid UTF-8` };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, reason: shortenReason(`${what}: payload is not JSON (${(error as Error).message})`) };
  }
}

// ---------------------------------------------------------------- telemetry

export const telemetrySchema = z.strictObject({
  /** Milliseconds since the epoch. */
  ts: z.number().int().nonnegative(),
  /** State of charge 0..1; null on mains power or without a gauge. */
  battery: z.number().min(0).max(1).nullable(),
  temperatureC: z.number().min(-60).max(150).nullable(),
  framesPerSecond: z.number().nonnegative().max(1000),
  /** Frames per exit since the previous telemetry message; the last entry is the final exit. */
  exitHistogram: z.array(z.number().int().nonnegative()).max(32),
  operatingPoint: z.string().min(1).max(128),
  /** Frames offloaded since the previous telemetry message. */
  offloaded: z.number().int().nonnegative().optional(),
  /** Frames since the previous telemetry message that the motion gate passed without inference. */
  gated: z.number().int().nonnegative().optional(),
  /** Why the board last powered up, when the firmware bridge can tell. */
  wokeBy: z.enum(WAKE_REASONS).optional(),
  /** Frames since the previous telemetry message that an earlier exit settled by temporal exit reuse. */
  reused: z.number().int().nonnegative().optional(),
  /** Frames since the previous telemetry message that a newer frame replaced before the agent took them. */
  dropped: z.number().int().nonnegative().optional(),
  /** Capture to result over the latest frames, p50 and p95, ms. */
  latencyMs: z.strictObject({ p50: z.number().nonnegative(), p95: z.number().nonnegative() }).optional(),
  /** "on", or why the controller is not moving the operating point (off, or suspended by hand-set thresholds). */
  controller: z.string().min(1).max(300).optional(),
  /** What the broker refuses this agent (a topic its ACL denies), with the fix; absent while the link works. */
  mqtt: z.string().min(1).max(500).optional(),
  /** The lifetime planner's plan and why, when it is on. */
  plan: z.string().min(1).max(500).optional(),
  /** The planner's early warning: the battery-life target is out of reach above the floors, and the hours now expected. */
  planWarning: z.string().min(1).max(500).optional(),
  /** A sleep the plan wants that something holds off (an offload answer, a config change, a snapshot), or cannot take. */
  sleep: z.string().min(1).max(300).optional(),
  /** What the model's segments run on: edgetpu, xnnpack or stock. */
  backend: z.string().min(1).max(32).optional(),
  /** Why a package with Edge TPU segments runs on the CPU, and when the TPU is looked for again. */
  backendNote: z.string().min(1).max(500).optional(),
});
export type Telemetry = z.infer<typeof telemetrySchema>;

// ---------------------------------------------------------------- state and events

/** The retained state: what the device concluded last, and since when. */
export const stateSchema = z.strictObject({
  label: z.string().min(1).max(128),
  confidence: z.number().min(0).max(1),
  /** The exit the frame left at (the server's answer counts as the last). */
  exit: z.number().int().nonnegative().max(31),
  /** When this label began to be the state (ms since the epoch). */
  since: z.number().int().nonnegative(),
  /** When the state was last confirmed. */
  at: z.number().int().nonnegative(),
  decidedBy: z.enum(['device', 'server']),
});
export type DeviceState = z.infer<typeof stateSchema>;

const eventSummarySchema = z.strictObject({
  id: z.string().min(1).max(64),
  start: z.number().int().nonnegative(),
  end: z.number().int().nonnegative().nullable(),
  label: z.string().min(1).max(128),
  confidence: z.number().min(0).max(1),
  frames: z.number().int().positive(),
  exits: z.array(z.number().int().nonnegative()).max(32),
});

/** One message on the events topic; `before` is the event at its previous message, as Frigate sends it. */
export const eventMessageSchema = z.strictObject({
  type: z.enum(['new', 'update', 'end']),
  before: eventSummarySchema.nullable(),
  after: eventSummarySchema,
});
export type EventMessagePayload = z.infer<typeof eventMessageSchema>;

// ---------------------------------------------------------------- config/set

export { offloadModeSchema };

/** Kept here for the `edge-exit server` command, which reads its flags with it. */
export { definedOnly };

export const configRequestIdSchema = z.string().min(1).max(64);

export const configSetRequestSchema = z.strictObject({
  /** Echoed in the response so the sender can match it. */
  id: configRequestIdSchema,
  set: configPatchSchema,
});
export type ConfigSetRequest = z.infer<typeof configSetRequestSchema>;

export type ConfigSetResult = { ok: true; request: ConfigSetRequest } | { ok: false; id?: string; reason: string };

/**
 * The id of a config/set, from the whole message when it is JSON (any key order), else from
 * its first bytes; undefined when it has none that could be read. Read before the request is
 * handled, to refuse a replayed id.
 */
export function configSetRequestId(bytes: Buffer): string | undefined {
  const decoded = decodeJsonPayload(bytes, MAX_CONFIG_SET_BYTES, 'config/set');
  if (!decoded.ok) return leadingRequestId(bytes);
  const value = decoded.value;
  const id = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>).id : undefined;
  return configRequestIdSchema.safeParse(id).success ? (id as string) : undefined;
}

/** A config/set is a few levels deep; a deeper one is refused before anything walks it recursively. */
export const MAX_CONFIG_SET_DEPTH = 16;

/**
 * The id of a request that cannot be parsed whole (too large, cut short), read from its
 * first bytes when it starts as `{"id": "..."`: the sender still learns which request was
 * refused. Only a bounded prefix is looked at.
 */
export function leadingRequestId(bytes: Uint8Array): string | undefined {
  const head = Buffer.from(bytes.subarray(0, 256)).toString('utf8');
  const literal = head.match(/^\s*\{\s*"id"\s*:\s*("(?:[^"\\\u0000-\u001f]|\\.){1,64}")/)?.[1];
  if (literal === undefined) return undefined;
  try {
    const id: unknown = JSON.parse(literal);
    return configRequestIdSchema.safeParse(id).success ? (id as string) : undefined;
  } catch {
    return undefined;
  }
}


/** Whether a parsed JSON value nests deeper than `limit`, found without recursion (a crafted payload may be thousands deep). */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    if (depth + 1 > limit) return true;
    for (const child of Object.values(current as Record<string, unknown>)) stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}

/** Reads a config/set message; never throws. The id is returned with a rejection when it could be read, for the response. */
export function parseConfigSet(bytes: Buffer): ConfigSetResult {
  try {
    const decoded = decodeJsonPayload(bytes, MAX_CONFIG_SET_BYTES, 'config/set');
    if (!decoded.ok) {
      const id = bytes instanceof Uint8Array ? leadingRequestId(bytes) : undefined;
      return id === undefined ? decoded : { ...decoded, id };
    }
    const value = decoded.value;
    const rawId = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>).id : undefined;
    const id = configRequestIdSchema.safeParse(rawId).success ? (rawId as string) : undefined;
    if (nestedDeeperThan(value, MAX_CONFIG_SET_DEPTH)) {
      const reason = `config/set: nested deeper than ${MAX_CONFIG_SET_DEPTH} levels; a config change is a few levels deep`;
      return id === undefined ? { ok: false, reason } : { ok: false, id, reason };
    }
    const parsed = configSetRequestSchema.safeParse(value);
    if (parsed.success) return { ok: true, request: parsed.data };
    const reason = describeIssuesReason('config/set', parsed.error, value);
    return id === undefined ? { ok: false, reason } : { ok: false, id, reason };
  } catch (error) {
    // Belt and braces: a message from the network must never take the agent down.
    return { ok: false, reason: shortenReason(`config/set: could not be read (${String(error)})`) };
  }
}

// ---------------------------------------------------------------- config/response and config/state

export const configResponseSchema = z.strictObject({
  /** null when the request's id could not be read. */
  id: configRequestIdSchema.nullable(),
  status: z.enum(['ok', 'error']),
  reason: z.string().max(MAX_REASON_LENGTH).optional(),
  /** The config version in force after the request. */
  version: z.number().int().nonnegative().optional(),
});
export type ConfigResponse = z.infer<typeof configResponseSchema>;

/** The config/response for a parse result: errors carry the reason, successes the new version. */
export function configResponseFor(result: ConfigSetResult, version?: number): ConfigResponse {
  if (result.ok) return version === undefined ? { id: result.request.id, status: 'ok' } : { id: result.request.id, status: 'ok', version };
  const response: ConfigResponse = { id: result.id ?? null, status: 'error', reason: shortenReason(result.reason) };
  if (version !== undefined) response.version = version;
  return response;
}

export const configStateSchema = z.strictObject({
  /** Bumped on every accepted change, so retained state and responses can be matched. */
  version: z.number().int().nonnegative(),
  /**
   * The config in force, already validated when it was loaded or patched; checked here only
   * as an object, since re-parsing a parsed config would re-apply (and re-judge) its defaults.
   */
  config: z.record(z.string(), z.unknown()),
});
export type ConfigState = z.infer<typeof configStateSchema>;

/** Serialises a payload after checking it against its schema, so the agent never publishes what it would refuse. */
export function encodeJsonPayload<S extends z.ZodType>(schema: S, value: z.input<S>): Buffer {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new TypeError(describeIssuesReason('payload', parsed.error, value));
  return Buffer.from(JSON.stringify(parsed.data), 'utf8');
}
