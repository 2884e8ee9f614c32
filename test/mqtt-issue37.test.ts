/**
 * Issue 37 (5, 6, 12, 13) on real brokers: aedes in process (MQTT 3.1.1) and Mosquitto (MQTT 5).
 * Serial: the warnings are captured from the shared logger.
 */
import test from 'ava';
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { encodeOffload, encodeOffloadAnswer, type OffloadAnswer } from '../agent/mqtt/offload-codec.js';
import { type ConfigResponse } from '../agent/mqtt/payloads.js';
import { serverAvailabilityTopic } from '../agent/mqtt/topics.js';
import { mosquittoTest, startAedes, startMosquitto } from './helpers/brokers.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { waitFor } from './helpers/wait.js';
import { captureWarnings } from './helpers/warnings.js';

const MODEL_HASH = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const LABELS = ['cat', 'dog'];
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A link whose config/set handler applies `maxFrameRate` (what the dashboard changed) and says ok. */
function startLink(url: string, deviceId: string, protocolVersion: 4 | 5) {
  const config = parseAgentConfig({ deviceId, mqtt: { url } });
  const applied: number[] = [];
  const sizes: number[] = [];
  const answers: Array<{ requestId: string; answer: OffloadAnswer }> = [];
  const link = new AgentLink({
    url,
    deviceId,
    config,
    protocolVersion,
    labels: LABELS,
    handlers: {
      onAnswer: (requestId, answer) => void answers.push({ requestId, answer }),
      onConfigSet: (bytes) => {
        sizes.push(bytes.length);
        const request = JSON.parse(bytes.toString()) as { id: string; set: { maxFrameRate: number } };
        applied.push(request.set.maxFrameRate);
        return { response: Buffer.from(JSON.stringify({ id: request.id, status: 'ok', version: applied.length })), state: Buffer.from(JSON.stringify({ version: applied.length, config: {} })) };
      },
      configState: () => Buffer.from(JSON.stringify({ version: applied.length, config: {} })),
    },
  });
  return { link, applied, sizes, answers };
}

async function client(url: string, protocolVersion: 4 | 5): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion, reconnectPeriod: 0 });
}

function responses(watch: MqttWatch, topic: string): ConfigResponse[] {
  return watch.on(topic).map((m) => JSON.parse(m.payload.toString()) as ConfigResponse);
}

test.serial('a retained config/set is refused on connect, saying why; a replayed id is refused; a new request is applied once', async (t) => {
  const broker = await startAedes();
  const { link, applied } = startLink(broker.url, 'retain-gw', 4);
  const operator = await client(broker.url, 4);
  const watch = await MqttWatch.connect(broker.url, [link.topics.configResponse], { protocolVersion: 4 });
  t.teardown(async () => {
    await link.stop();
    await operator.endAsync();
    await watch.close();
    await broker.close();
  });
  // Left retained by an old dashboard: replayed on every subscribe, so on every reconnect.
  await operator.publishAsync(link.topics.configSet, JSON.stringify({ id: 'old-1', set: { maxFrameRate: 1.5 } }), { qos: 1, retain: true });
  await link.start();
  const refused = await watch.waitFor('the refusal of the retained request', (m) => m.topic === link.topics.configResponse);
  t.like(JSON.parse(refused.payload.toString()), { id: 'old-1', status: 'error', reason: 'config/set: retained config/set requests are not applied; publish without retain' });

  await operator.publishAsync(link.topics.configSet, JSON.stringify({ id: 'dash-7', set: { maxFrameRate: 2.5 } }), { qos: 1 });
  await watch.waitFor('the answer to the dashboard', (m) => m.topic === link.topics.configResponse && m.payload.includes('dash-7'));
  // The same id again, with another value: a replay, refused.
  await operator.publishAsync(link.topics.configSet, JSON.stringify({ id: 'dash-7', set: { maxFrameRate: 1.5 } }), { qos: 1 });
  await waitFor('the answer to the replay', () => responses(watch, link.topics.configResponse).length === 3);
  const [, ok, replay] = responses(watch, link.topics.configResponse);
  t.like(ok, { id: 'dash-7', status: 'ok' });
  t.is(replay!.status, 'error');
  t.regex(replay!.reason!, /request id dash-7 was already applied/);
  t.deepEqual(applied, [2.5], 'only the live request with a new id was applied');
});

function answer(requestId: string, label: string, modelHash = MODEL_HASH): Buffer {
  return encodeOffloadAnswer({ requestId, label, confidence: 0.9, serverMs: 3, modelHash });
}

function frame(requestId: string): Buffer {
  return encodeOffload({ kind: 'image', requestId, packageName: 'tiny', modelHash: MODEL_HASH, format: 'jpeg', data: new Uint8Array([1, 2, 3]) });
}

test.serial('offload answers are taken only for this gateway\'s requests, its model and labels, once a server announced itself; refusals are counted and warned about, throttled and escaped', async (t) => {
  const warnings = captureWarnings(t);
  const broker = await startAedes();
  const { link, answers } = startLink(broker.url, 'spoof-gw', 4);
  const spoofer = await client(broker.url, 4);
  t.teardown(async () => {
    await link.stop();
    await spoofer.endAsync();
    await broker.close();
  });
  await link.start();
  await waitFor('the connect', () => link.connected);
  await pause(100);
  const topic = (id: string) => link.topics.offloadResponse(id);
  const refused = () => link.offloadClient.counters.refusedAnswers;

  link.offload('r1', frame('r1'));
  // No server has announced itself yet.
  await spoofer.publishAsync(topic('r1'), answer('r1', 'cat'), { qos: 1 });
  await waitFor('the refusal without a server', () => refused() === 1);

  await spoofer.publishAsync(serverAvailabilityTopic('srv-1', link.topics.prefix), 'online', { qos: 1, retain: true });
  await waitFor('the server is known', () => link.offloadServers === 1);
  await spoofer.publishAsync(topic('r1'), answer('r1', 'FORGED-BY-SPOOFER'), { qos: 1 });
  await spoofer.publishAsync(topic('never-sent'), answer('never-sent', 'cat'), { qos: 1 });
  await spoofer.publishAsync(topic('r1'), answer('r1', 'cat', 'fedcba9876543210'), { qos: 1 });
  await waitFor('three more refusals', () => refused() === 4);

  // A bad server id on an availability topic, and a flood of malformed answers quoting an attacker's text.
  const evil = `\u001b[2J\nFAKE LOG LINE ${'x'.repeat(2000)}`;
  await spoofer.publishAsync(`${link.topics.prefix}/servers/bad id!/availability`, evil, { qos: 1 });
  for (let i = 0; i < 200; i++) spoofer.publish(topic('r1'), `{"requestId":"r1","label":${JSON.stringify(evil)}}`, { qos: 0 });
  await waitFor('the flood refused', () => refused() === 204);
  t.is(link.offloadServers, 1, 'the bad availability named no server');

  await spoofer.publishAsync(topic('r1'), answer('r1', 'cat'), { qos: 1 });
  await waitFor('the real answer', () => answers.length === 1);
  t.deepEqual(answers.map((a) => [a.requestId, a.answer.label]), [['r1', 'cat']]);
  t.like(link.offloadClient.counters, { answers: 1, refusedAnswers: 204 });
  const refusals = warnings.filter((w) => w.includes('offload answer'));
  t.true(refusals.length <= 2, `throttled: ${refusals.length} warnings for 204 refusals`);
  for (const w of warnings) {
    t.false(w.includes('\u001b') || w.includes('\n') || w.includes('FAKE LOG LINE xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'), `no raw attacker text: ${w.slice(0, 200)}`);
    t.true(w.length < 500, 'a short line');
  }
});

/** A 20 MB publish to config/set: it must not reach the handler, and the link stays up. */
async function oversize(t: import('ava').ExecutionContext, url: string, protocolVersion: 4 | 5, close: () => Promise<void>): Promise<void> {
  captureWarnings(t);
  const { link, sizes } = startLink(url, `big-gw-${protocolVersion}`, protocolVersion);
  const operator = await client(url, protocolVersion);
  t.teardown(async () => {
    await link.stop();
    await operator.endAsync();
    await close();
  });
  let closes = 0;
  link.transport.onClose(() => closes++);
  await link.start();
  await waitFor('the connect', () => link.connected);
  await pause(200);
  const big = Buffer.alloc(20 * 1024 * 1024, 0x20);
  Buffer.from('{"id":"big","set":{"maxFrameRate":1}}').copy(big);
  const options: IClientPublishOptions = { qos: 1 };
  await operator.publishAsync(link.topics.configSet, big, options);
  await operator.publishAsync(link.topics.configSet, JSON.stringify({ id: 'small', set: { maxFrameRate: 3 } }), options);
  await waitFor('the small request', () => sizes.length >= 1, 30_000);
  await pause(300);
  t.is(sizes.length, 1, 'the 20 MB message reached no handler');
  t.true(sizes[0]! < 100);
  t.true(link.connected, 'the link stays up');
  t.is(closes, 0, 'and was never dropped');
}

test.serial('MQTT 3.1.1 (aedes): a 20 MB publish to a subscribed topic is dropped before any handler and the link stays up', async (t) => {
  const broker = await startAedes();
  await oversize(t, broker.url, 4, () => broker.close());
});

mosquittoTest()('MQTT 5 (Mosquitto): the agent sets a maximum packet size, so the broker never sends it a 20 MB publish and the link stays up', async (t) => {
  const broker = await startMosquitto();
  await oversize(t, broker.url, 5, () => broker.stop());
});

mosquittoTest()('MQTT 5 (Mosquitto): an answer naming a server that never announced itself, or with another request\'s correlation data, is refused', async (t) => {
  const broker = await startMosquitto();
  const { link, answers } = startLink(broker.url, 'v5-gw', 5);
  const server = await client(broker.url, 5);
  t.teardown(async () => {
    await link.stop();
    await server.endAsync();
    await broker.stop();
  });
  captureWarnings(t);
  await server.publishAsync(serverAvailabilityTopic('srv-a', link.topics.prefix), 'online', { qos: 1, retain: true });
  await link.start();
  await waitFor('the server is known', () => link.offloadServers === 1);
  link.offload('q1', frame('q1'));
  const topic = link.topics.offloadResponse('q1');
  const refused = () => link.offloadClient.counters.refusedAnswers;
  await server.publishAsync(topic, answer('q1', 'dog'), { qos: 1, properties: { userProperties: { serverId: 'srv-ghost' } } });
  await server.publishAsync(topic, answer('q1', 'dog'), { qos: 1, properties: { correlationData: Buffer.from('q2'), userProperties: { serverId: 'srv-a' } } });
  await waitFor('two refusals', () => refused() === 2);
  await server.publishAsync(topic, answer('q1', 'dog'), { qos: 1, properties: { correlationData: Buffer.from('q1'), userProperties: { serverId: 'srv-a' } } });
  await waitFor('the answer', () => answers.length === 1);
  t.is(answers[0]!.answer.label, 'dog');
  t.is(refused(), 2);
});
