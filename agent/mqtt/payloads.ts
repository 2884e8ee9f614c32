import { z } from 'zod';
import { type AgentConfig, agentConfigSchema, controllerSchema, describeIssues, eventsSchema, gateSchema, offloadModeSchema, offloadSchema, plannerSchema, policySchema } from '../config/agent-config.js';
import { strictSection } from '../../common/config-issues.js';
import { WAKE_REASONS } from '../../firmware-bridge/types.js';

/** A config/set is a handful of fields; anything bigger is a mistake or an attack. */
export const MAX_CONFIG_SET_BYTES = 16 * 1024;
/** Reasons go back over MQTT and into logs: long enough to name the field, never the whole payload. */
export const MAX_REASON_LENGTH = 600;

export function shortenReason(reason: string, limit = MAX_REASON_LENGTH): string {
  return reason.length <= limit ? reason : `${reason.slice(0, limit - 1)}…`;
}

export type JsonDecodeResult = { ok: true; value: unknown } | { ok: false; reason: string };

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

export function describeIssuesReason(what: string, error: z.ZodError, input: unknown): string {
  // Each issue already names its field; cap each so one huge value cannot hide the others.
  const problems = describeIssues(error, input).map((p) => shortenReason(p, 200));
  return shortenReason(`${what}: ${problems.join('; ')}`);
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

/** A section as a patch: every field optional and without its default, so that a field left out stays as it is. */
function patchSection<Shape extends z.ZodRawShape>(section: z.ZodObject<Shape>): z.ZodType<{ [K in keyof Shape]?: z.output<Shape[K]> }> {
  const fields = Object.fromEntries(
    Object.entries(section.shape).map(([key, field]) => [key, (field instanceof z.ZodDefault ? (field.unwrap() as z.ZodType) : (field as z.ZodType)).optional()]),
  );
  return strictSection(fields) as unknown as z.ZodType<{ [K in keyof Shape]?: z.output<Shape[K]> }>;
}

/**
 * What config/set may change, cut from the agent's own schema so that a remote change is
 * judged by the same rules as the config file; sections and fields not listed here are
 * refused by name (the deployment-level ones: model, source, bridge, mqtt, logs). The
 * defaults are unwrapped: a field left out means "unchanged", not "back to the default".
 */
export const configPatchSchema = strictSection({
  policy: strictSection({
    operatingPoint: policySchema.shape.operatingPoint.unwrap().min(1).max(128).optional(),
    policy: policySchema.shape.policy,
    thresholds: policySchema.shape.thresholds.unwrap().min(1).max(32).optional(),
    patience: policySchema.shape.patience,
    maxExit: policySchema.shape.maxExit,
  }).optional(),
  controller: patchSection(controllerSchema).optional(),
  /** The battery-life target and floors; the halt command is not: a broker must never choose what the gateway runs. */
  planner: patchSection(plannerSchema.omit({ haltCommand: true })).optional(),
  offload: strictSection({
    mode: offloadSchema.shape.mode.unwrap().optional(),
    deadlineMs: offloadSchema.shape.deadlineMs.unwrap().optional(),
    minConfidence: offloadSchema.shape.minConfidence.unwrap().optional(),
    enabled: offloadSchema.shape.enabled.unwrap().optional(),
  }).optional(),
  gate: patchSection(gateSchema.omit({ width: true })).optional(),
  /** Discovery on or off (off deletes the device's configs from Home Assistant); the prefix is fixed at start-up. */
  homeassistant: strictSection({ enabled: z.boolean().optional() }).optional(),
  events: patchSection(eventsSchema).optional(),
  maxFrameRate: agentConfigSchema.shape.maxFrameRate.unwrap().optional(),
  telemetryIntervalMs: agentConfigSchema.shape.telemetryIntervalMs.unwrap().optional(),
}).refine((set) => Object.values(set).some((v) => v !== undefined), {
  message: 'nothing to change: set at least one of policy, controller, planner, offload, gate, events, homeassistant, maxFrameRate, telemetryIntervalMs',
});
export type ConfigPatch = z.infer<typeof configPatchSchema>;

/** What config/set may change, as JSON Schema: the dashboard's settings form is made from it. */
export function configPatchJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(configPatchSchema, { io: 'input', unrepresentable: 'any' }), title: 'edge-exit config/set' };
}

export const configRequestIdSchema = z.string().min(1).max(64);

export const configSetRequestSchema = z.strictObject({
  /** Echoed in the response so the sender can match it. */
  id: configRequestIdSchema,
  set: configPatchSchema,
});
export type ConfigSetRequest = z.infer<typeof configSetRequestSchema>;

export type ConfigSetResult = { ok: true; request: ConfigSetRequest } | { ok: false; id?: string; reason: string };

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

export type ApplyPatchResult = { ok: true; config: AgentConfig } | { ok: false; reason: string };

/**
 * The agent config with a patch's policy and controller parts applied and those sections
 * re-validated; the input is never modified. Only the patched sections are re-checked:
 * re-parsing the whole config would also re-judge untouched fields. The other sections and
 * fields are merged as they are, for the caller to validate the whole.
 */
export function applyConfigPatch(config: AgentConfig, patch: ConfigPatch): ApplyPatchResult {
  try {
    const next = structuredClone(config);
    if (patch.policy) {
      const merged: Record<string, unknown> = { ...next.policy, ...definedOnly(patch.policy) };
      // Naming an operating point replaces hand-set thresholds: otherwise they would silently win over it.
      if (patch.policy.operatingPoint !== undefined && patch.policy.thresholds === undefined) {
        for (const field of ['policy', 'thresholds', 'patience'] as const) if (patch.policy[field] === undefined) delete merged[field];
      }
      const parsed = policySchema.safeParse(merged);
      if (!parsed.success) return { ok: false, reason: describeIssuesReason('config/set policy', parsed.error, merged) };
      next.policy = parsed.data;
    }
    if (patch.controller) {
      const merged = { ...next.controller, ...definedOnly(patch.controller) };
      const parsed = controllerSchema.safeParse(merged);
      if (!parsed.success) return { ok: false, reason: describeIssuesReason('config/set controller', parsed.error, merged) };
      next.controller = parsed.data;
    }
    // Every other section and field needs no rule of its own: the whole config is validated again after the patch.
    const target = next as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(patch)) {
      if (key === 'policy' || key === 'controller' || value === undefined) continue;
      const isSection = typeof value === 'object' && value !== null && !Array.isArray(value);
      target[key] = isSection ? { ...(target[key] as object), ...definedOnly(value) } : value;
    }
    return { ok: true, config: next };
  } catch (error) {
    return { ok: false, reason: shortenReason(`config/set: ${String(error)}`) };
  }
}

/** A patch section without its absent fields, so spreading it never unsets anything. */
export function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
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
