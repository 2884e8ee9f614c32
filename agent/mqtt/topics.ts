import { deviceIdSchema } from '../config/agent-config.js';

/**
 * Every MQTT topic the agent and the offload server use, built in one place so that
 * the two sides, the docs and the tests cannot drift apart. Layout follows what
 * Frigate and zigbee2mqtt users expect: `<prefix>/<deviceId>/<area>/<verb>`.
 */

/** MQTT 5 for response topics, correlation data and message expiry; 3.1.1 brokers get the topic-based fallback. */
export const MQTT_PROTOCOL_VERSION = 5;
export const DEFAULT_TOPIC_PREFIX = 'edge-exit';

export const AVAILABILITY_ONLINE = 'online';
export const AVAILABILITY_OFFLINE = 'offline';

/** Generous for any real layout, small enough that a topic never dominates a packet. */
export const MAX_PREFIX_LENGTH = 128;
export const MAX_LEVEL_LENGTH = 64;
export const MAX_TOPIC_BYTES = 512;

/** Request ids travel as a topic level (3.1.1 fallback) and in the binary header, so both rules apply. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_REQUEST_ID_LENGTH = 64;

export class TopicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TopicError';
  }
}

/** The first rule a topic level breaks, in words; undefined when it is fine. */
function levelProblem(level: string, what: string): string | undefined {
  if (level.length === 0) return `${what} is empty (MQTT topic levels must not be empty)`;
  if (level.includes('\u0000')) return `${what} contains a NUL character, which MQTT forbids in topics`;
  if (level.includes('+')) return `${what} "${level}" contains "+", an MQTT single-level wildcard`;
  if (level.includes('#')) return `${what} "${level}" contains "#", an MQTT multi-level wildcard`;
  if (level.includes('/')) return `${what} "${level}" contains "/", the MQTT level separator`;
  if (level.startsWith('$')) return `${what} "${level}" starts with "$", which brokers reserve ($SYS, $share)`;
  // Spaces and control characters are legal MQTT but break shells, logs and broker ACL files.
  if (/[\s\p{Cc}]/u.test(level)) return `${what} "${level}" contains whitespace or a control character`;
  if (level.length > MAX_LEVEL_LENGTH) return `${what} is ${level.length} characters long, at most ${MAX_LEVEL_LENGTH} are allowed`;
  return undefined;
}

export function deviceIdProblem(deviceId: unknown): string | undefined {
  if (typeof deviceId !== 'string') return `device id must be a string, got ${typeof deviceId}`;
  const problem = levelProblem(deviceId, 'device id');
  if (problem) return problem;
  const parsed = deviceIdSchema.safeParse(deviceId);
  return parsed.success ? undefined : `device id "${deviceId}": ${parsed.error.issues[0]?.message ?? 'invalid'}`;
}

export function prefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== 'string') return `topic prefix must be a string, got ${typeof prefix}`;
  if (prefix.length === 0) return 'topic prefix is empty';
  if (prefix.length > MAX_PREFIX_LENGTH) return `topic prefix is ${prefix.length} characters long, at most ${MAX_PREFIX_LENGTH} are allowed`;
  if (prefix.startsWith('/') || prefix.endsWith('/')) return `topic prefix "${prefix}" starts or ends with "/", which makes an empty level`;
  const levels = prefix.split('/');
  for (const [i, level] of levels.entries()) {
    const problem = levelProblem(level, `topic prefix level ${i + 1}`);
    if (problem) return `${problem} (in prefix "${prefix}")`;
  }
  return undefined;
}

export function requestIdProblem(requestId: unknown): string | undefined {
  if (typeof requestId !== 'string') return `request id must be a string, got ${typeof requestId}`;
  if (REQUEST_ID_PATTERN.test(requestId)) return undefined;
  const shown = requestId.length > 80 ? `${requestId.slice(0, 80)}…` : requestId;
  return `request id ${JSON.stringify(shown)} must be 1 to ${MAX_REQUEST_ID_LENGTH} of letters, digits, _ . - (it becomes a topic level)`;
}

export function shareGroupProblem(group: unknown): string | undefined {
  if (typeof group !== 'string') return `shared subscription group must be a string, got ${typeof group}`;
  return levelProblem(group, 'shared subscription group');
}

function check(problem: string | undefined): void {
  if (problem) throw new TopicError(problem);
}

/** Throws TopicError unless the topic is safe to publish to: no wildcards, no empty levels, no NUL, bounded. */
export function assertPublishTopic(topic: string): string {
  if (topic.length === 0) throw new TopicError('topic is empty');
  if (Buffer.byteLength(topic, 'utf8') > MAX_TOPIC_BYTES) throw new TopicError(`topic is longer than ${MAX_TOPIC_BYTES} bytes`);
  if (/[+#\u0000]/.test(topic)) throw new TopicError(`topic "${topic}" contains a wildcard or NUL; published topics must be concrete`);
  if (topic.split('/').some((level) => level.length === 0)) throw new TopicError(`topic "${topic}" has an empty level`);
  return topic;
}

export interface DeviceTopics {
  prefix: string;
  deviceId: string;
  /** Retained `online`; the broker publishes the retained last will `offline`. */
  availability: string;
  telemetry: string;
  configSet: string;
  configResponse: string;
  /** Retained: the config in force and its version. */
  configState: string;
  /** Retained: what the device sees now (label, confidence, exit, since when, decided by whom). */
  state: string;
  /** Events: new, update and end messages, as Frigate's `events` topic has them. */
  events: string;
  /** Retained: the best frame of the latest event, a JPEG. */
  snapshot: string;
  /** Operator → agent: `{ id }` asks how each part is. */
  healthRequest: string;
  healthResponse: string;
  /** Agent → server. */
  offloadRequest: string;
  /** Agent's subscription for answers on the 3.1.1 fallback. */
  offloadResponseFilter: string;
  /** Per-request answer topic; with MQTT 5 it is also sent as the Response Topic property. */
  offloadResponse(requestId: string): string;
}

/** Topics of one device. Throws TopicError naming the bad part. */
export function deviceTopics(deviceId: string, prefix: string = DEFAULT_TOPIC_PREFIX): DeviceTopics {
  check(prefixProblem(prefix));
  check(deviceIdProblem(deviceId));
  const base = `${prefix}/${deviceId}`;
  const topics = {
    prefix,
    deviceId,
    availability: assertPublishTopic(`${base}/availability`),
    telemetry: assertPublishTopic(`${base}/telemetry`),
    configSet: assertPublishTopic(`${base}/config/set`),
    configResponse: assertPublishTopic(`${base}/config/response`),
    configState: assertPublishTopic(`${base}/config/state`),
    state: assertPublishTopic(`${base}/state`),
    events: assertPublishTopic(`${base}/events`),
    snapshot: assertPublishTopic(`${base}/snapshot`),
    healthRequest: assertPublishTopic(`${base}/health/request`),
    healthResponse: assertPublishTopic(`${base}/health/response`),
    offloadRequest: assertPublishTopic(`${base}/offload/request`),
    offloadResponseFilter: `${base}/offload/response/+`,
    offloadResponse(requestId: string): string {
      check(requestIdProblem(requestId));
      return assertPublishTopic(`${base}/offload/response/${requestId}`);
    },
  };
  return topics;
}

export interface ServerSubscriptionOptions {
  /** Mosquitto (2.0+) and most v5 brokers share `$share/<group>/<filter>` among server replicas. */
  shareGroup?: string;
}

/** What an offload server subscribes to: every device's requests, optionally as a shared subscription. */
export function serverOffloadFilter(prefix: string = DEFAULT_TOPIC_PREFIX, options: ServerSubscriptionOptions = {}): string {
  check(prefixProblem(prefix));
  const filter = `${prefix}/+/offload/request`;
  if (options.shareGroup === undefined) return filter;
  check(shareGroupProblem(options.shareGroup));
  return `$share/${options.shareGroup}/${filter}`;
}

/**
 * Server ids name one server worker: a topic level of letters, digits, _ . - (the default
 * is the host name and process id, so replicas on one host do not share one).
 */
export function serverIdProblem(serverId: unknown): string | undefined {
  if (typeof serverId !== 'string') return `server id must be a string, got ${typeof serverId}`;
  if (REQUEST_ID_PATTERN.test(serverId)) return undefined;
  return `server id ${JSON.stringify(serverId.slice(0, 80))} must be 1 to ${MAX_LEVEL_LENGTH} of letters, digits, _ . -`;
}

/** `host-1234` from a host name and pid (`host-1234-2` for a second server in one process), with whatever a topic level cannot hold replaced. */
export function defaultServerId(hostname: string, pid: number, instance = 1): string {
  const suffix = instance > 1 ? `-${pid}-${instance}` : `-${pid}`;
  const host = hostname.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, MAX_LEVEL_LENGTH - suffix.length) || 'server';
  return `${host}${suffix}`;
}

/**
 * Where a server worker says it is up: retained `online` while it is connected; an
 * empty retained message (which deletes the retained one) when it stops, and as its
 * last will when its connection drops. Four levels under the prefix, so it never
 * meets a device's three-level topics, whatever the device is called.
 */
export function serverAvailabilityTopic(serverId: string, prefix: string = DEFAULT_TOPIC_PREFIX): string {
  check(prefixProblem(prefix));
  check(serverIdProblem(serverId));
  return assertPublishTopic(`${prefix}/servers/${serverId}/availability`);
}

/** Where a server worker says how much it has done, every few seconds (the fleet page reads it). */
export function serverLoadTopic(serverId: string, prefix: string = DEFAULT_TOPIC_PREFIX): string {
  check(prefixProblem(prefix));
  check(serverIdProblem(serverId));
  return assertPublishTopic(`${prefix}/servers/${serverId}/load`);
}

/** What an agent subscribes to, to know whether any offload server is up. */
export function serverAvailabilityFilter(prefix: string = DEFAULT_TOPIC_PREFIX): string {
  check(prefixProblem(prefix));
  return `${prefix}/servers/+/availability`;
}

/** The server id of an availability topic, or undefined when the topic is not one. */
export function serverIdFromAvailability(topic: string, prefix: string = DEFAULT_TOPIC_PREFIX): string | undefined {
  const head = `${prefix}/servers/`;
  const tail = '/availability';
  if (!topic.startsWith(head) || !topic.endsWith(tail)) return undefined;
  const serverId = topic.slice(head.length, topic.length - tail.length);
  return serverIdProblem(serverId) ? undefined : serverId;
}

/** The device id of a request topic the server received, or undefined when the topic is not one. */
export function deviceIdFromOffloadRequest(topic: string, prefix: string = DEFAULT_TOPIC_PREFIX): string | undefined {
  const head = `${prefix}/`;
  const tail = '/offload/request';
  if (!topic.startsWith(head) || !topic.endsWith(tail)) return undefined;
  const deviceId = topic.slice(head.length, topic.length - tail.length);
  return deviceIdProblem(deviceId) ? undefined : deviceId;
}

/** The request id carried by a 3.1.1 fallback response topic of this device, or undefined. */
export function requestIdFromOffloadResponse(topic: string, topics: DeviceTopics): string | undefined {
  const head = `${topics.prefix}/${topics.deviceId}/offload/response/`;
  if (!topic.startsWith(head)) return undefined;
  const requestId = topic.slice(head.length);
  return requestIdProblem(requestId) ? undefined : requestId;
}

export type Direction = 'agent → broker' | 'agent → server' | 'server → agent' | 'operator → agent' | 'agent → operator' | 'Home Assistant → agent' | 'agent → Home Assistant';

export interface TopicTableRow {
  topic: string;
  direction: Direction;
  qos: 0 | 1 | 2;
  retained: boolean;
  payload: string;
}

/** The whole MQTT surface, for the README and for tests that check the builders against it. */
export const TOPIC_TABLE: readonly TopicTableRow[] = [
  { topic: '<prefix>/<deviceId>/availability', direction: 'agent → broker', qos: 1, retained: true, payload: '`online`; last will `offline`' },
  { topic: '<prefix>/<deviceId>/telemetry', direction: 'agent → operator', qos: 0, retained: false, payload: 'JSON telemetry (battery, temperature, frames/s, exit histogram, operating point, backend the segments run on, ts)' },
  { topic: '<prefix>/<deviceId>/config/set', direction: 'operator → agent', qos: 1, retained: false, payload: 'JSON `{ id, set }`, at most 16 KiB' },
  { topic: '<prefix>/<deviceId>/config/response', direction: 'agent → operator', qos: 1, retained: false, payload: 'JSON `{ id, status, reason?, version? }`' },
  { topic: '<prefix>/<deviceId>/config/state', direction: 'agent → operator', qos: 1, retained: true, payload: 'JSON `{ version, config }`' },
  {
    topic: '<prefix>/<deviceId>/state',
    direction: 'agent → operator',
    qos: 1,
    retained: true,
    payload: 'JSON `{ label, confidence, exit, since, at, decidedBy }` (`device`, or `server` once an offload answer overrules it); sent when the label changes (at most 10 a second: the last of a faster burst follows within 100 ms), refreshed every 5 s',
  },
  {
    topic: '<prefix>/<deviceId>/events',
    direction: 'agent → operator',
    qos: 1,
    retained: false,
    payload: "JSON `{ type, before, after }` as Frigate's `events`: `new`, `update`, `end`, each event `{ id, start, end, label, confidence, frames, exits }`",
  },
  { topic: '<prefix>/<deviceId>/snapshot', direction: 'agent → operator', qos: 1, retained: true, payload: "JPEG: the best frame of the latest event (at the model's input size)" },
  { topic: '<prefix>/<deviceId>/health/request', direction: 'operator → agent', qos: 1, retained: false, payload: 'JSON `{ id }` (anything else is answered without an id)' },
  {
    topic: '<prefix>/<deviceId>/health/response',
    direction: 'agent → operator',
    qos: 1,
    retained: false,
    payload: 'JSON `{ id, status, checks, at }`: `ok`, `degraded` or `stalled`, and a word on each part (source, engine, bridge, store, mqtt, offload)',
  },
  {
    topic: '<prefix>/<deviceId>/ha/<control>/set',
    direction: 'Home Assistant → agent',
    qos: 1,
    retained: false,
    payload: 'a control\'s command (`ON`/`OFF`, an operating point, a number), turned into a `config/set` request `ha-N`: answered on `config/response`',
  },
  {
    topic: 'homeassistant/<component>/edge-exit_<deviceId>/<object>/config',
    direction: 'agent → Home Assistant',
    qos: 1,
    retained: true,
    payload: 'discovery configs (sensors, a select, switches, numbers), on every connect and on `online` at `homeassistant/status`; emptied when discovery is turned off',
  },
  { topic: '<prefix>/<deviceId>/offload/request', direction: 'agent → server', qos: 1, retained: false, payload: 'binary EXO frame (int8 features at a cut, or an encoded image), at most 2 MiB' },
  { topic: '<prefix>/+/offload/request', direction: 'agent → server', qos: 1, retained: false, payload: 'server subscription; `$share/<group>/<prefix>/+/offload/request` for replicas' },
  { topic: '<prefix>/servers/<serverId>/availability', direction: 'server → agent', qos: 1, retained: true, payload: '`online`; emptied (retained message deleted) when the server stops, and as its last will' },
  {
    topic: '<prefix>/servers/<serverId>/load',
    direction: 'server → agent',
    qos: 0,
    retained: false,
    payload: 'JSON `{ answered, duplicates, rejected, at }` every 5 s: totals since the worker started (the fleet page shows them per worker)',
  },
  { topic: '<prefix>/<deviceId>/offload/response/<requestId>', direction: 'server → agent', qos: 1, retained: false, payload: 'JSON `{ requestId, label, confidence, serverMs, modelHash }`' },
];

/** TOPIC_TABLE as a Markdown table. */
export function topicTableMarkdown(rows: readonly TopicTableRow[] = TOPIC_TABLE): string {
  const lines = ['| Topic | Direction | QoS | Retained | Payload |', '| --- | --- | --- | --- | --- |'];
  for (const row of rows) lines.push(`| \`${row.topic}\` | ${row.direction} | ${row.qos} | ${row.retained ? 'yes' : 'no'} | ${row.payload} |`);
  return lines.join('\n');
}
