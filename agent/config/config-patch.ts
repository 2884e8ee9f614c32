/**
 * What config/set may change (the patch schema), how a patch is laid over a config, and how
 * patches merge into the saved overrides: one module, so the rules of a live change are
 * written once, next to the schema they are cut from.
 */
import { z } from 'zod';
import { describeIssues, strictSection } from '../../common/config-issues.js';
import { type AgentConfig, agentConfigSchema, controllerSchema, eventsSchema, gateSchema, offloadSchema, plannerSchema, policySchema } from './agent-config.js';

/** Reasons go back over MQTT and into logs: long enough to name the field, never the whole payload. */
export const MAX_REASON_LENGTH = 600;

export function shortenReason(reason: string, limit = MAX_REASON_LENGTH): string {
  return reason.length <= limit ? reason : `${reason.slice(0, limit - 1)}…`;
}

export function describeIssuesReason(what: string, error: z.ZodError, input: unknown): string {
  // Each issue already names its field; cap each so one huge value cannot hide the others.
  const problems = describeIssues(error, input).map((p) => shortenReason(p, 200));
  return shortenReason(`${what}: ${problems.join('; ')}`);
}

/** A section as a patch: every field optional and without its default, so that a field left out stays as it is. */
function patchSection<Shape extends z.ZodRawShape>(section: z.ZodObject<Shape>): z.ZodType<{ [K in keyof Shape]?: z.output<Shape[K]> }> {
  const fields = Object.fromEntries(
    Object.entries(section.shape).map(([key, field]) => [key, (field instanceof z.ZodDefault ? (field.unwrap() as z.ZodType) : (field as z.ZodType)).optional()]),
  );
  return strictSection(fields) as unknown as z.ZodType<{ [K in keyof Shape]?: z.output<Shape[K]> }>;
}

/** The sections config/set may change, each with its patch schema; their owners apply them (agent/config/config-owners.ts). */
const patchSections = {
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
  events: patchSection(eventsSchema).optional(),
  /** Discovery on or off (off deletes the device's configs from Home Assistant); the prefix is fixed at start-up. */
  homeassistant: strictSection({ enabled: z.boolean().optional() }).optional(),
  maxFrameRate: agentConfigSchema.shape.maxFrameRate.unwrap().optional(),
  telemetryIntervalMs: agentConfigSchema.shape.telemetryIntervalMs.unwrap().optional(),
};

/** A top-level key of the patch: each has exactly one owner. */
export type ConfigSection = keyof typeof patchSections;
export const CONFIG_SECTIONS = Object.keys(patchSections) as ConfigSection[];

/**
 * What config/set may change, cut from the agent's own schema so that a remote change is
 * judged by the same rules as the config file; sections and fields not listed here are
 * refused by name (the deployment-level ones: model, source, bridge, mqtt, logs). The
 * defaults are unwrapped: a field left out means "unchanged", not "back to the default".
 */
export const configPatchSchema = strictSection(patchSections).refine((set) => Object.values(set).some((v) => v !== undefined), {
  message: `nothing to change: set at least one of ${CONFIG_SECTIONS.join(', ')}`,
});
export type ConfigPatch = z.infer<typeof configPatchSchema>;

/** What config/set may change, as JSON Schema: the dashboard's settings form is made from it. */
export function configPatchJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(configPatchSchema, { io: 'input', unrepresentable: 'any' }), title: 'edge-exit config/set' };
}

/** A patch section without its absent fields, so spreading it never unsets anything. */
export function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const isSection = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Each section of the patch laid over the same section of `onto` (a config or a saved patch), field by field. */
function layered(onto: Record<string, unknown>, patch: ConfigPatch): Record<string, unknown> {
  const out: Record<string, unknown> = { ...onto };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const before = out[key];
    out[key] = isSection(value) ? { ...(isSection(before) ? before : {}), ...definedOnly(value) } : value;
  }
  // Naming an operating point hands the choice back from hand-set thresholds: otherwise they would silently win over it.
  const policy = out.policy;
  if (isSection(policy) && patch.policy?.operatingPoint !== undefined && patch.policy.thresholds === undefined) {
    for (const field of ['policy', 'thresholds', 'patience'] as const) if (patch.policy[field] === undefined) delete policy[field];
  }
  return out;
}

export type ApplyPatchResult = { ok: true; config: AgentConfig } | { ok: false; reason: string };

/**
 * The agent config with a patch laid over it; the input is never modified. The policy and
 * controller sections are re-checked here, so their reasons name config/set; the caller
 * validates the whole result (remote-config.ts), which judges every other field.
 */
export function applyConfigPatch(config: AgentConfig, patch: ConfigPatch): ApplyPatchResult {
  try {
    const next = layered(structuredClone(config) as unknown as Record<string, unknown>, patch);
    for (const [key, schema] of [['policy', policySchema], ['controller', controllerSchema]] as const) {
      if (!patch[key]) continue;
      const parsed = schema.safeParse(next[key]);
      if (!parsed.success) return { ok: false, reason: describeIssuesReason(`config/set ${key}`, parsed.error, next[key]) };
      next[key] = parsed.data;
    }
    return { ok: true, config: next as unknown as AgentConfig };
  } catch (error) {
    return { ok: false, reason: shortenReason(`config/set: ${String(error)}`) };
  }
}

/**
 * The saved overrides with one more patch merged in, section by section and field by field,
 * by the same layering as a live change: what is applied live is what comes back after a restart.
 */
export function mergePatches(previous: ConfigPatch | undefined, patch: ConfigPatch): ConfigPatch {
  return layered({ ...previous }, patch) as ConfigPatch;
}

/** Dotted paths of the leaves that differ; arrays count as one leaf (thresholds change as a whole). */
export function changedLeafPaths(before: unknown, after: unknown, prefix = ''): string[] {
  if (!isSection(before) || !isSection(after)) return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].flatMap((key) => changedLeafPaths(before[key], after[key], prefix ? `${prefix}.${key}` : key));
}
