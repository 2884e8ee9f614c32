import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { PROJECT_ROOT } from './paths.js';
import { defaultPackage } from '../model-package/locate.js';
import { describeIssues, redactSecrets, strictSection } from '../../common/config-issues.js';
import { bridgeConfigSchema } from '../../firmware-bridge/config.js';
import { EXIT_POLICY_NAMES } from '../exit-policy/policy.js';
import { DEVICE_PROFILE_NAMES } from '../energy/device-profiles.js';
import { BACKENDS } from '../runtime/backends.js';

export { describeIssues, redactSecrets, redactUrl } from '../../common/config-issues.js';

/** Device ids become MQTT topic levels and file names: no wildcards, separators or spaces. */
export const deviceIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only, 1 to 64 of them (it becomes an MQTT topic level)');

const thresholdsSchema = z.array(z.number().min(0).max(1));

export const sourceSchema = z.discriminatedUnion('kind', [
  strictSection({
    kind: z.literal('replay'),
    /** An ImageFolder split: labels come from the class folders, so live accuracy is known. */
    dataset: z.string().default('${shared}/data/cifar10/test'),
    loop: z.boolean().default(true),
    seed: z.number().int().default(1),
  }),
  strictSection({
    kind: z.literal('folder'),
    path: z.string(),
    /** Move handled images here; otherwise they are only remembered as seen. */
    doneDir: z.string().optional(),
    pollMs: z.number().int().min(50).max(60_000).default(500),
  }),
  strictSection({
    kind: z.literal('camera'),
    /**
     * auto streams with rpicam-vid, else libcamera-vid (MJPEG, the camera kept open); on the
     * legacy stack, raspistill in timelapse mode through node-raspistill (kept open too);
     * else a still per frame with rpicam-still or libcamera-still.
     */
    command: z.enum(['auto', 'rpicam-vid', 'libcamera-vid', 'rpicam-still', 'libcamera-still', 'raspistill']).default('auto'),
    width: z.number().int().min(64).max(4056).default(640),
    height: z.number().int().min(64).max(3040).default(480),
    /** The video tools' frame rate. */
    frameRate: z.number().min(0.1).max(120).default(10),
    /** Stills: a capture taking longer is killed. */
    timeoutMs: z.number().int().min(500).max(60_000).default(5000),
    /** Video: no frame for this long, and the camera tool is restarted. */
    stallTimeoutS: z.number().min(1).max(600).default(10),
  }),
  strictSection({
    kind: z.literal('demo'),
    /** Where the demo video is made (once, with ffmpeg, from ../shared). */
    dir: z.string().default('data/demo'),
  }),
  strictSection({
    kind: z.literal('stream'),
    /** A V4L2 camera (/dev/video0), an rtsp:// or http(s):// stream, or a video file, read by ffmpeg. */
    url: z.string().min(1),
    /** Video files: start again at the end. */
    loop: z.boolean().default(true),
    /** Video files: deliver at the file's own frame rate, or as fast as they decode. */
    realtime: z.boolean().default(true),
    /** No frame for this long: the stream is stalled, and ffmpeg is restarted (with backoff). */
    stallTimeoutS: z.number().min(1).max(600).default(10),
    /** rtsp:// only: listen at that address for a camera that pushes its stream, rather than ask the camera for it. */
    listen: z.boolean().default(false),
  }),
]);
export type SourceConfig = z.infer<typeof sourceSchema>;

export const policySchema = strictSection({
  /** A calibrated operating point of the package ("balanced", "max-probability@-1.0", ...). */
  operatingPoint: z.string().default('balanced'),
  /** Explicit thresholds override the operating point's (with `policy`). */
  policy: z.enum(EXIT_POLICY_NAMES).optional(),
  thresholds: thresholdsSchema.optional(),
  patience: z.number().int().min(1).max(16).optional(),
  maxExit: z.number().int().min(0).max(31).optional(),
});

export const controllerSchema = strictSection({
  enabled: z.boolean().default(true),
  /** Lowest accuracy allowed, in points below the final exit's validation accuracy. */
  maxAccuracyDropPoints: z.number().min(0).max(50).default(5),
  maxTemperatureC: z.number().min(30).max(110).default(75),
  /** Battery state of charge kept in reserve: at or below it the agent runs at its cheapest. */
  minBatteryReserve: z.number().min(0).max(0.9).default(0.1),
  /** Seconds a decision stands before a non-urgent change (simulated seconds in the simulator). */
  minDwellS: z.number().min(0).max(3600).default(30),
});

const timeOfDay = z.string().regex(/^([01]?\d|2[0-3]):[0-5]\d$/, 'a time of day as HH:MM');

/** How long the battery must last (agent/controller/lifetime-planner.ts). */
export const lifetimeTargetSchema = z.discriminatedUnion('kind', [
  strictSection({ kind: z.literal('hours'), hours: z.number().positive().max(87_600) }),
  strictSection({
    kind: z.literal('until'),
    /** HH:MM (the next one) or an ISO date-time. */
    at: z.string().refine((at) => timeOfDay.safeParse(at).success || !Number.isNaN(Date.parse(at)), 'a time of day as HH:MM or an ISO date-time such as 2026-12-24T08:00'),
  }),
  strictSection({
    kind: z.literal('until-charging'),
    /** When charging is due back (sunrise on a solar panel); without it, the time of day charging last started. */
    schedule: timeOfDay.optional(),
  }),
]);

/**
 * The lifetime planner: operating point, frame rate and duty cycle chosen to meet a battery-life
 * target at the best accuracy above the floors, re-planned from the measured drain. Thermal limits
 * (controller.maxTemperatureC) still win.
 */
export const plannerSchema = strictSection({
  enabled: z.boolean().default(false),
  target: lifetimeTargetSchema.default({ kind: 'hours', hours: 24 }),
  /** Lowest validation accuracy to run at, 0..1. */
  minAccuracy: z.number().min(0).max(1).default(0),
  /** Lowest share of the events longer than a boot (the wake latency) the plan must expect to see, 0..1. */
  minEventRecall: z.number().min(0).max(1).default(0.9),
  /** The battery's capacity; a wrong figure is corrected by the measured drain. */
  batteryWh: z.number().positive().max(100_000).default(37),
  /** State of charge left at the end of the target. */
  reserve: z.number().min(0).max(0.9).default(0.05),
  /** Power the board down between awake windows; needs a bridge that can wake it (rtc, serial, simulated). */
  sleep: z.boolean().default(false),
  /** A sleep may end on motion (a PIR the power-management side watches). */
  wakeOnMotion: z.boolean().default(false),
  /** Awake this long after the last motion before powering down. */
  lingerS: z.number().min(5).max(3600).default(30),
  /** Longest sleep: the device still reports in this often. */
  maxSleepS: z.number().min(60).max(86_400).default(3600),
  /** What to expect before the agent has watched for a while. */
  expectedEventsPerHour: z.number().min(0).max(3600).default(4),
  expectedEventS: z.number().min(1).max(3600).default(30),
  replanEveryS: z.number().min(10).max(86_400).default(600),
  /** Run after everything has stopped cleanly and the wake-up is armed. */
  haltCommand: z.array(z.string().min(1)).min(1).default(['systemctl', 'poweroff']),
});
export type PlannerConfig = z.infer<typeof plannerSchema>;

/** Plain-text schemes, and the TLS scheme an operator meant with TLS files set. */
const TLS_SCHEME_FOR: Record<string, string> = { mqtt: 'mqtts', tcp: 'mqtts', ws: 'wss' };

/** The broker connection; the agent and `edge-exit server` validate it alike. */
export const mqttSchema = strictSection({
    /** The broker; without one the default run starts an embedded aedes broker and an offload server. */
    url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'an mqtt://, mqtts://, ws:// or wss:// URL').optional(),
    embeddedPort: z.number().int().min(1).max(65535).default(1884),
    prefix: z.string().default('edge-exit'),
    /** 5 for response topics and correlation data; 4 for MQTT 3.1.1 brokers (the embedded aedes). */
    protocolVersion: z.union([z.literal(4), z.literal(5)]).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    caFile: z.string().optional(),
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
    /** Reconnect delays double from the first to the last while the broker stays away, and start again from the first after a connect. */
    reconnectMinMs: z.number().int().min(100).max(60_000).default(1000),
    reconnectMaxMs: z.number().int().min(100).max(3_600_000).default(30_000),
  })
  .superRefine((mqtt, ctx) => {
    if (mqtt.reconnectMaxMs < mqtt.reconnectMinMs) {
      ctx.addIssue({ code: 'custom', path: ['reconnectMaxMs'], message: `must be at least mqtt.reconnectMinMs (${mqtt.reconnectMinMs})` });
    }
    // mqtt.js ignores TLS files on a plain-text URL: the link would silently go unencrypted and the broker go unverified.
    const files = (['caFile', 'certFile', 'keyFile'] as const).filter((field) => mqtt[field] !== undefined);
    if (files.length === 0) return;
    const names = files.map((field) => `mqtt.${field}`);
    const named = names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
    if (mqtt.url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `not set, so the embedded plain-text broker is used and ${named} would be ignored: set it to the broker's mqtts:// URL, or remove the TLS files` });
      return;
    }
    const scheme = /^([a-z]+):\/\//.exec(mqtt.url)?.[1];
    const tls = scheme === undefined ? undefined : TLS_SCHEME_FOR[scheme];
    if (tls === undefined) return;
    ctx.addIssue({
      code: 'custom',
      path: ['url'],
      message: `${scheme}:// is not encrypted, so ${named} would be ignored: use ${tls}:// (the broker's TLS listener, usually port ${tls === 'wss' ? 443 : 8883}), or remove the TLS files`,
    });
  });

/** What offload modes a device may use: the int8 seam, the encoded frame, or whichever costs the radio less. */
export const offloadModeSchema = z.enum(['features', 'image', 'auto']);

export const offloadSchema = strictSection({
  /** features: the int8 seam at the last cut; image: the encoded frame; auto: whichever costs the radio less. */
  mode: offloadModeSchema.default('auto'),
  /** Past it the local answer stands; a later server answer is still recorded. */
  deadlineMs: z.number().int().min(10).max(60_000).default(500),
  /** Off: every frame is decided on the device (Home Assistant's offload switch). */
  enabled: z.boolean().default(true),
  /** A frame that leaves the deepest allowed exit below this confidence is offloaded (when the controller allows). */
  minConfidence: z.number().min(0).max(1).default(0.6),
  /** Requests kept while the broker is away, and for how long, before they are resolved locally. */
  maxQueued: z.number().int().min(0).max(100_000).default(500),
  queueExpiryMs: z.number().int().min(1000).max(86_400_000).default(60_000),
});

/**
 * The motion gate (agent/gate/motion-gate.ts): the model runs only when the scene changed,
 * and the previous result stands otherwise, up to maxReuseS. Frigate's motion settings
 * are the anchor: threshold, contour area (here a share of the frame), lightning
 * threshold, improve contrast.
 */
export const gateSchema = strictSection({
  /** auto: on for cameras and streams; off for replays and folders, where every image is a new scene. */
  mode: z.enum(['auto', 'on', 'off']).default('auto'),
  /** Per-pixel change (0-255) that counts as changed. */
  threshold: z.number().min(1).max(255).default(30),
  /** Smallest share of the frame that must change to be motion. */
  minArea: z.number().min(0).max(1).default(0.005),
  /** A change over this share of the frame at once is light, not motion. */
  lightningThreshold: z.number().min(0).max(1).default(0.8),
  /**
   * How fast the background follows the scene, per frame. Quick, because a result stands while
   * nothing moves: an object that came in and stands still stops costing inferences within a
   * second or so (at 10 frames/s), and so does the trace it leaves when it goes.
   */
  backgroundAlpha: z.number().min(0.001).max(1).default(0.2),
  improveContrast: z.boolean().default(false),
  /** Width of the grayscale copy the detector compares (fixed at start-up). */
  width: z.number().int().min(8).max(640).default(64),
  /** Longest time a result stands without inference while nothing moves. */
  maxReuseS: z.number().min(0).max(86_400).default(10),
  /** Classify the box around what moved rather than the whole frame: in a wide view a small object is then seen large. */
  cropToMotion: z.boolean().default(false),
  /** Where motion counts (Frigate's zones), as boxes in shares of the frame; empty: everywhere. */
  zones: z
    .array(strictSection({ x: z.number().min(0).max(1), y: z.number().min(0).max(1), width: z.number().gt(0).max(1), height: z.number().gt(0).max(1) }))
    .max(16)
    .default([]),
  /**
   * Temporal exit reuse: after a small change (at most temporalMaxChange of the frame) and a
   * previous answer at least temporalMinConfidence sure, the first exit agreeing with it is trusted.
   */
  temporalReuse: z.boolean().default(false),
  temporalMaxChange: z.number().min(0).max(1).default(0.02),
  temporalMinConfidence: z.number().min(0).max(1).default(0.9),
});
export type GateConfig = z.infer<typeof gateSchema>;

/** Events (agent/events/event-tracker.ts): they follow the motion gate, and start with motion and a confident label. */
export const eventsSchema = strictSection({
  minConfidence: z.number().min(0).max(1).default(0.6),
  /** An event ends after this long without motion. */
  endAfterS: z.number().min(0.1).max(3600).default(5),
  /** Shorter blips never become events. */
  minDurationS: z.number().min(0).max(600).default(1),
  /** Another label takes over an event only when its accumulated confidence is this much larger. */
  switchMargin: z.number().min(0).max(10).default(0.25),
  /** Publish the best frame of each event on the snapshot topic, and keep it in the log. */
  snapshots: z.boolean().default(true),
});
export type EventsConfig = z.infer<typeof eventsSchema>;

export const agentConfigSchema = strictSection({
  deviceId: deviceIdSchema.default('edge-exit-1'),
  model: strictSection({
    /**
     * The multi-exit package: a name (models/releases/<name>/, else models/<name>/, else built
     * once from models/configs/<name>.json), a package directory, or a build config .json.
     */
    package: z.string().min(1).default(() => defaultPackage()),
    backend: z.enum(['auto', ...BACKENDS]).default('auto'),
    /** Interpreter threads; "auto" is all cores but one, at most 4 (3 on a 4-core Pi), so decoding and logging keep a core. */
    threads: z.union([z.literal('auto'), z.number().int().min(1).max(16)]).default('auto'),
    edgetpuDevice: z.string().regex(/^(usb|pci)(:\d+)?$/, 'usb, usb:N, pci or pci:N').optional(),
  }).prefault({}),
  /** The default run watches the demo camera; without ffmpeg it replays CIFAR-10 instead, and says so. */
  source: sourceSchema.prefault({ kind: 'demo' }),
  gate: gateSchema.prefault({}),
  events: eventsSchema.prefault({}),
  /** Highest frame rate; the controller may lower it. */
  maxFrameRate: z.number().positive().max(120).default(40),
  policy: policySchema.prefault({}),
  controller: controllerSchema.prefault({}),
  planner: plannerSchema.prefault({}),
  /** Energy figures: a device profile name (see agent/energy/device-profiles.ts). */
  deviceProfile: z.enum(DEVICE_PROFILE_NAMES).default('pi4'),
  /**
   * The firmware bridge, as firmware-bridge/ reads it ({ kind: 'simulated' | 'sysfs' | 'i2c' | ... }).
   * The default is the demo: a simulated small battery in a warm enclosure whose clock advances
   * frame by frame, so a battery's life passes in a minute or two.
   */
  bridge: bridgeConfigSchema.prefault({ kind: 'simulated', clock: 'manual', capacityWh: 0.5, ambientC: 38 }),
  /** With a simulated bridge: how much slower the simulated device computes than this machine (energy and heat follow it). */
  simulation: strictSection({ computeTimeScale: z.number().min(0.01).max(100).default(6) }).prefault({}),
  logs: strictSection({
    path: z.string().default('data/edge-exit.db'),
    maxAgeDays: z.number().min(0.01).max(3650).default(30),
    maxBytes: z.number().int().min(2 ** 20).max(2 ** 40).default(512 * 2 ** 20),
  }).prefault({}),
  statusIntervalMs: z.number().int().min(100).max(60_000).default(1000),
  telemetryIntervalMs: z.number().int().min(100).max(3_600_000).default(5000),
  offload: offloadSchema.prefault({}),
  mqtt: mqttSchema.prefault({}),
  /** The agent's HTTP side: the dashboard, /metrics (Prometheus) and /health; on localhost only unless a token guards it. */
  web: strictSection({
    enabled: z.boolean().default(true),
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(9108),
    /**
     * Required when host is not a loopback address: requests carry `Authorization: Bearer <token>`
     * (Prometheus), or basic auth with the token as the password (a browser asks for it).
     */
    token: z.string().min(16, 'at least 16 characters').optional(),
    /** The live dashboard at `/`; off leaves /metrics and /health alone. */
    dashboard: z.boolean().default(true),
  })
    .refine((web) => web.token !== undefined || ['127.0.0.1', '::1', 'localhost'].includes(web.host), {
      message: 'web.host is not a loopback address, so web.token is required (give EDGE_EXIT__WEB__TOKEN a long random string), or keep host 127.0.0.1',
    })
    .prefault({}),
  /** When the agent calls itself stalled: /health, the MQTT health answer and the systemd watchdog follow it. */
  health: strictSection({
    stalledAfterS: z.number().min(1).max(3600).default(60),
  }).prefault({}),
  /** Home Assistant MQTT discovery: the device and its entities appear by themselves. */
  homeassistant: strictSection({
    enabled: z.boolean().default(true),
    discoveryPrefix: z.string().regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, 'topic levels of letters, digits, _ and -').default('homeassistant'),
  }).prefault({}),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;

/**
 * The config as it may be shown or published (the retained config/state, /api/config): passwords and
 * tokens replaced, and credentials taken out of every URL in it (mqtt.url, and source.url, which may
 * hold the camera's password).
 */
export function publicConfig(config: AgentConfig): AgentConfig {
  return redactSecrets(config);
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

function parseWith<S extends z.ZodType>(schema: S, input: unknown, origin: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error, input);
    throw new ConfigError(`Invalid ${origin}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, problems);
  }
  return parsed.data;
}

/** Validates a config object (a file's, or one changed over MQTT); throws ConfigError naming each field. */
export function parseAgentConfig(input: unknown, origin = 'config'): AgentConfig {
  return parseWith(agentConfigSchema, input, origin);
}

const mqttSectionSchema = strictSection({ mqtt: mqttSchema });

/** The mqtt section alone (`edge-exit server`), judged by the agent's rules; errors name mqtt.<field>. */
export function parseMqttSettings(input: unknown, origin: string): AgentConfig['mqtt'] {
  return parseWith(mqttSectionSchema, { mqtt: input }, origin).mqtt;
}

/** Always text, whatever they look like: a password such as 123456 or true must not turn into a number or a boolean. */
const TEXT_FIELDS = new Set(['username', 'password']);

/** The config field an EDGE_EXIT__A__B_C variable sets: a.bC. */
function environmentFieldPath(name: string): string[] {
  return name
    .slice('EDGE_EXIT__'.length)
    .split('__')
    .map((part) => part.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()));
}

function environmentOverrideNames(env: NodeJS.ProcessEnv): Array<{ name: string; field: string[] }> {
  return Object.keys(env)
    .filter((name) => name.startsWith('EDGE_EXIT__') && env[name] !== undefined)
    .map((name) => ({ name, field: environmentFieldPath(name) }));
}

/**
 * Environment overrides: EDGE_EXIT__CONTROLLER__MAX_TEMPERATURE_C=70 sets
 * controller.maxTemperatureC. Values are read as JSON when they parse, else as
 * text; credentials (EDGE_EXIT__MQTT__PASSWORD) are always text.
 */
export function applyEnvironmentOverrides(config: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const out = structuredClone(config);
  for (const { name, field: keys } of environmentOverrideNames(env)) {
    const raw = env[name]!;
    let target: Record<string, unknown> = out;
    for (const key of keys.slice(0, -1)) {
      if (typeof target[key] !== 'object' || target[key] === null) target[key] = {};
      target = target[key] as Record<string, unknown>;
    }
    const field = keys.at(-1)!;
    let value: unknown = raw;
    if (!TEXT_FIELDS.has(field)) {
      try {
        value = JSON.parse(raw);
      } catch {
        // Plain text, e.g. a device id.
      }
    }
    target[field] = value;
  }
  return out;
}

/**
 * A problem with a value that an environment variable set names that variable, since the
 * config file the operator would look in does not hold the value.
 */
function blameEnvironment(problems: string[], env: NodeJS.ProcessEnv): string[] {
  const overrides = environmentOverrideNames(env);
  return problems.map((problem) => {
    const field = problem.slice(0, problem.indexOf(':'));
    const unknown = /unknown key "([^"]+)"/.exec(problem)?.[1];
    const full = unknown === undefined ? field : field === '(root)' ? unknown : `${field}.${unknown}`;
    const culprit = overrides.find((o) => o.field.join('.') === full);
    return culprit ? `${problem} — set by the environment variable ${culprit.name}` : problem;
  });
}

export const DEFAULT_CONFIG_FILE = path.join(PROJECT_ROOT, 'edge-exit.config.json');

/** The config file (optional: every field has a default), then environment overrides, then validation. */
export function loadAgentConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): { config: AgentConfig; file: string | undefined } {
  const chosen = file ?? env.EDGE_EXIT_CONFIG ?? (fs.existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  let raw: Record<string, unknown> = {};
  if (chosen) {
    let text: string;
    try {
      text = fs.readFileSync(chosen, 'utf8');
    } catch (error) {
      throw new ConfigError(`Cannot read config file ${chosen}: ${(error as Error).message}`);
    }
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`Config file ${chosen} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const origin = chosen ? `config file ${chosen}` : 'configuration';
  try {
    return { config: parseAgentConfig(applyEnvironmentOverrides(raw, env), origin), file: chosen };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const problems = blameEnvironment(error.problems, env);
    const fromEnvironment = problems.some((p) => p.includes('set by the environment variable'));
    throw new ConfigError(`Invalid ${fromEnvironment ? `${origin} with its environment overrides` : origin}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, problems);
  }
}

/**
 * The config file's JSON Schema (draft 2020-12), for editors and the dashboard: what a
 * file may say, defaults included. `edge-exit config-schema` prints it.
 */
export function agentConfigJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(agentConfigSchema, { io: 'input', unrepresentable: 'any' }),
    title: 'edge-exit agent config',
  };
}
