import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { configResponseSchema, MAX_CONFIG_SET_BYTES } from '../../agent/mqtt/payloads.js';
import { deviceTopics } from '../../agent/mqtt/topics.js';
import { AgentProcess } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import { assertNoSecrets, GATEWAY_USER, readProcess, recordFigures, runSeed, securedBroker, seededRandom, tinyAgentPackageForFile } from '../helpers/resilience.js';
import { waitFor } from '../helpers/wait.js';

/*
 * 10,000 config/set payloads of thirteen kinds, most of them wrong in some way, sent to
 * a running gateway through a real broker. Every one must be answered, every refusal
 * must say why, and what stays in force (retained state, the overrides file) must be
 * exactly the last valid change.
 */

const PAYLOADS = 10_000;
const VALID_CHANGES = 20;
/**
 * Payloads sent and not yet answered, at most. A broker queues only so many messages for
 * a slow subscriber (Mosquitto's max_queued_messages, 1000) and drops the rest, so an
 * unpaced burst would measure the broker's queue, not the agent.
 */
const UNANSWERED_AT_MOST = 200;
const BATCH = 50;
const withMosquitto = mosquittoTest('mosquitto_passwd');
const tinyPackage = tinyAgentPackageForFile();

interface Fuzzed {
  kind: string;
  payload: Buffer;
  /** The id the agent can read back, when the payload has one. */
  id?: string;
  /** A valid change: the fields it sets. */
  change?: { telemetryIntervalMs?: number; minConfidence?: number; thresholds?: number[] };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** One payload of each kind, in turn; `valid` says whether this slot is one of the valid changes. */
function fuzzedPayload(n: number, random: () => number, valid: boolean): Fuzzed {
  const id = `f-${n}`;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  if (valid) {
    const change = { telemetryIntervalMs: 1000 + Math.floor(random() * 4000), minConfidence: Math.round(random() * 90) / 100 + 0.05, thresholds: Array.from({ length: 4 }, () => 0.5 + Math.round(random() * 40) / 100) };
    return {
      kind: 'valid change',
      id,
      change,
      payload: json({ id, set: { telemetryIntervalMs: change.telemetryIntervalMs, offload: { minConfidence: change.minConfidence }, policy: { policy: 'max-probability', thresholds: change.thresholds } } }),
    };
  }
  const kinds: Array<() => Fuzzed> = [
    () => ({ kind: 'truncated JSON', payload: json({ id, set: { telemetryIntervalMs: 2000 } }).subarray(0, 5 + Math.floor(random() * 20)) }),
    () => ({ kind: 'not an object', payload: Buffer.from(pick(['42', '"set"', '[1,2,3]', 'null', 'true', '""'])) }),
    () => ({ kind: 'unknown key', id, payload: json({ id, set: pick([{ telemetryIntervalMS: 1000 }, { policy: { treshold: [0.5] } }, { controller: { maxTemp: 70 } }, { colour: 'red' }]) }) }),
    () => ({ kind: 'wrong type', id, payload: json({ id, set: pick([{ telemetryIntervalMs: '1000' }, { policy: { thresholds: 'high' } }, { offload: { minConfidence: [] } }, { controller: { enabled: 'yes' } }]) }) }),
    () => ({ kind: 'out of range', id, payload: json({ id, set: pick([{ telemetryIntervalMs: -5 }, { policy: { thresholds: [1.5] } }, { offload: { minConfidence: 7 } }, { maxFrameRate: 1e9 }, { policy: { thresholds: [] } }]) }) }),
    () => ({ kind: 'not remotely settable', id, payload: json({ id, set: pick([{ mqtt: { url: 'mqtt://evil:1883' } }, { model: { package: 'x' } }, { source: { kind: 'camera' } }, { logs: { path: '/etc/passwd' } }, { deviceId: 'other' }]) }) }),
    () => {
      const depth = 100 + Math.floor(random() * 5000);
      return { kind: 'deep nesting', id, payload: Buffer.from(`{"id":"${id}","set":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`) };
    },
    () => ({ kind: 'oversize', id, payload: json({ id, set: { policy: { thresholds: Array.from({ length: MAX_CONFIG_SET_BYTES / 4 }, () => 0.5) } } }) }),
    () => ({ kind: 'random bytes', payload: Buffer.from(Array.from({ length: 1 + Math.floor(random() * 300) }, () => Math.floor(random() * 256))) }),
    () => ({ kind: 'prototype pollution', id, payload: Buffer.from(pick([`{"id":"${id}","set":{"__proto__":{"telemetryIntervalMs":1}}}`, `{"id":"${id}","set":{"constructor":{"prototype":{"x":1}}}}`, `{"id":"${id}","__proto__":{"set":{}}}`])) }),
    () => ({ kind: 'non-finite number', id, payload: Buffer.from(pick([`{"id":"${id}","set":{"telemetryIntervalMs":1e400}}`, `{"id":"${id}","set":{"offload":{"minConfidence":-1e400}}}`])) }),
    () => ({ kind: 'not JSON', payload: Buffer.from(pick([`{"id":"${id}","set":{"telemetryIntervalMs":NaN}}`, `{id:'${id}'}`, '\u0000', ''])) }),
    () => ({ kind: 'bad id', payload: json(pick([{ id: 'x'.repeat(500), set: {} }, { id: { nested: true }, set: {} }, { set: { telemetryIntervalMs: 1000 } }, { id: 7, set: {} }, { id: '', set: {} }])) }),
  ];
  return pick(kinds)();
}

/**
 * Publishes `count` payloads, keeping at most UNANSWERED_AT_MOST unanswered, then waits for
 * the last answers; a shortfall is left for the caller to report by kind.
 */
async function sendPaced(client: mqtt.MqttClient, topic: string, count: number, responses: unknown[], payload: (n: number) => Buffer, afterBatch: () => void = () => {}): Promise<void> {
  for (let n = 0; n < count; n += BATCH) {
    await waitFor(`answers to all but ${UNANSWERED_AT_MOST} of ${n} payloads (${responses.length} answered)`, () => n - responses.length <= UNANSWERED_AT_MOST - BATCH, 30_000, 5);
    await Promise.all(Array.from({ length: Math.min(BATCH, count - n) }, (_, i) => client.publishAsync(topic, payload(n + i), { qos: 1 })));
    afterBatch();
  }
  await waitFor(`${count} config responses`, () => responses.length >= count, 60_000, 50).catch(() => undefined);
}

/** Frames per second logged in [from, to). */
function frameRate(rows: { ts: number }[], from: number, to: number): number {
  return Number((rows.filter((row) => row.ts >= from && row.ts < to).length / ((to - from) / 1000)).toFixed(1));
}

withMosquitto(`${PAYLOADS.toLocaleString('en')} fuzzed config/set payloads: every one answered, every refusal with a reason, the last valid change in force`, async (t) => {
  const seed = runSeed();
  t.log(`seed ${seed} (EDGE_EXIT_RESILIENCE_SEED=${seed} replays it)`);
  const random = seededRandom(seed);
  const broker = await securedBroker(t);
  const topics = deviceTopics(GATEWAY_USER);
  const agent = AgentProcess.start(tinyPackage(), { deviceId: GATEWAY_USER, mqtt: { url: broker.gatewayUrl }, maxFrameRate: 30, controller: { enabled: false } });
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/frames\s+[\d.]+ fps/);
  // A calm stretch before the burst, to compare the frame rate against.
  const calmStarted = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 3000));

  const operator = await mqtt.connectAsync(broker.url, { ...broker.adminLogin, protocolVersion: 5 });
  t.teardown(() => operator.endAsync());
  const responses: Buffer[] = [];
  operator.on('message', (topic, payload) => {
    if (topic === topics.configResponse) responses.push(payload);
  });
  await operator.subscribeAsync(topics.configResponse, { qos: 1 });

  const validSlots = new Set(Array.from({ length: VALID_CHANGES }, (_, i) => Math.floor(((i + 0.5) * PAYLOADS) / VALID_CHANGES)));
  const sent: Fuzzed[] = [];
  const framesBefore = agent.inferences().length;
  const burstStarted = Date.now();
  const rssBefore = readProcess(agent.pid).rssMiB;
  let rssPeak = rssBefore;
  await sendPaced(operator, topics.configSet, PAYLOADS, responses, (n) => {
    const item = fuzzedPayload(n, random, validSlots.has(n));
    sent.push(item);
    return item.payload;
  }, () => (rssPeak = Math.max(rssPeak, readProcess(agent.pid).rssMiB)));
  const burstEnded = Date.now();
  const burstS = (burstEnded - burstStarted) / 1000;
  t.true(agent.inferences().length > framesBefore, 'the agent classified during the burst');

  const parsed = responses.map((bytes) => configResponseSchema.parse(JSON.parse(bytes.toString('utf8'))));
  const byId = new Map(parsed.filter((r) => r.id !== null).map((r) => [r.id, r]));
  const withoutReason = parsed.filter((r) => r.status === 'error' && !(r.reason && r.reason.length > 3));
  t.deepEqual(withoutReason, [], 'every refusal says why');
  const unmatched: Record<string, number> = {};
  for (const item of sent) if (item.id !== undefined && !byId.has(item.id)) unmatched[item.kind] = (unmatched[item.kind] ?? 0) + 1;
  t.deepEqual(unmatched, {}, 'every payload with a readable id is answered under that id');
  t.is(parsed.length, PAYLOADS, `one answer per payload; the last answers: ${responses.slice(-3).map(String).join(' | ')}`);
  const validSent = sent.filter((item) => item.change);
  const accepted = parsed.filter((r) => r.status === 'ok');
  t.is(accepted.length, VALID_CHANGES, `only the valid changes were accepted; the first answered: ${JSON.stringify(byId.get(validSent[0]!.id!))}`);
  for (const item of validSent) t.is(byId.get(item.id!)?.status, 'ok', `${item.id} accepted`);

  // What stays in force is the last valid change, in the retained state and in the overrides file.
  const last = validSent.at(-1)!.change!;
  const state = await new Promise<{ version: number; config: { telemetryIntervalMs: number; offload: { minConfidence: number }; policy: { thresholds: number[] } } }>((resolve, reject) => {
    const reader = mqtt.connect(broker.url, { ...broker.adminLogin, protocolVersion: 5 });
    const timer = setTimeout(() => reject(new Error('no retained config/state')), 10_000);
    reader.on('message', (_topic, payload) => {
      clearTimeout(timer);
      resolve(JSON.parse(payload.toString('utf8')));
      reader.end();
    });
    reader.subscribe(topics.configState, { qos: 1 });
  });
  t.is(state.version, VALID_CHANGES);
  t.is(state.config.telemetryIntervalMs, last.telemetryIntervalMs!);
  t.is(state.config.offload.minConfidence, last.minConfidence!);
  t.deepEqual(state.config.policy.thresholds, last.thresholds);
  const overrides = JSON.parse(fs.readFileSync(path.join(agent.dir, 'remote-config.json'), 'utf8')) as { version: number; patch: Record<string, unknown> };
  t.is(overrides.version, VALID_CHANGES);
  t.deepEqual(overrides.patch, { telemetryIntervalMs: last.telemetryIntervalMs, offload: { minConfidence: last.minConfidence }, policy: { policy: 'max-probability', thresholds: last.thresholds } });
  t.is(await agent.stop(), 0, agent.output);
  const changes = agent.configChanges();
  const rows = agent.inferences();
  const framesPerSecond = { beforeBurst: frameRate(rows, calmStarted, burstStarted), duringBurst: frameRate(rows, burstStarted, burstEnded) };
  // The rate is a figure for the report (CI runs other tests beside this one); that frames kept coming is the rule.
  t.true(framesPerSecond.duringBurst > 0, `frames kept coming during the burst: ${JSON.stringify(framesPerSecond)}`);

  const kinds: Record<string, number> = {};
  for (const item of sent) kinds[item.kind] = (kinds[item.kind] ?? 0) + 1;
  const searched = await assertNoSecrets(t, { outputs: { agent: agent.output }, dirs: [agent.dir], exclude: [agent.configFile], broker });
  recordFigures(t, 'config-fuzz', {
    seed,
    payloads: sent.length,
    megabytes: Number((sent.reduce((sum, item) => sum + item.payload.length, 0) / 1e6).toFixed(1)),
    kinds,
    answers: parsed.length,
    accepted: accepted.length,
    refusedWithReason: parsed.length - accepted.length - withoutReason.length,
    answeredWithoutId: parsed.filter((r) => r.id === null).length,
    crashes: 0,
    burstSeconds: Number(burstS.toFixed(1)),
    payloadsPerSecond: Math.round(PAYLOADS / burstS),
    framesPerSecond,
    rssMiB: { before: Number(rssBefore.toFixed(1)), peak: Number(rssPeak.toFixed(1)) },
    configChangesLogged: changes.length,
    secretSearch: { placesSearched: searched, leaks: 0 },
  });
});

test.serial('a config/set burst on the embedded broker (in the agent\'s own process): every payload answered, frames keep coming, the rate recorded', async (t) => {
  const agent = AgentProcess.start(tinyPackage(), { deviceId: 'embedded-gw', maxFrameRate: 30, controller: { enabled: false } });
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/frames\s+[\d.]+ fps/);
  const port = (JSON.parse(fs.readFileSync(agent.configFile, 'utf8')) as { mqtt: { embeddedPort: number } }).mqtt.embeddedPort;
  const calmStarted = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const topics = deviceTopics('embedded-gw');
  const operator = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
  t.teardown(() => operator.endAsync());
  const responses: Buffer[] = [];
  operator.on('message', (_topic, payload) => responses.push(payload));
  await operator.subscribeAsync(topics.configResponse, { qos: 1 });
  const random = seededRandom(runSeed());
  const burstStarted = Date.now();
  await sendPaced(operator, topics.configSet, 3000, responses, (n) => fuzzedPayload(n, random, false).payload);
  const burstEnded = Date.now();
  t.is(responses.length, 3000, 'every payload answered');
  t.is(await agent.stop(), 0, agent.output);
  const rows = agent.inferences();
  const framesPerSecond = { beforeBurst: frameRate(rows, calmStarted, burstStarted), duringBurst: frameRate(rows, burstStarted, burstEnded) };
  // The rate itself is a figure for the report, not a timed assertion: CI runs other tests beside this one.
  t.true(framesPerSecond.duringBurst > 0, `frames kept coming during the burst: ${JSON.stringify(framesPerSecond)}`);
  recordFigures(t, 'config-fuzz-embedded', { payloads: 3000, answers: responses.length, burstSeconds: (burstEnded - burstStarted) / 1000, framesPerSecond });
});
