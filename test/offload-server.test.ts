import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { encodeOffload, parseOffloadAnswer, type OffloadAnswer } from '../agent/mqtt/offload-codec.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { OffloadServer } from '../server/offload-server.js';
import { mqttSchema } from '../agent/config/agent-config.js';
import { startEmbeddedBroker } from '../agent/mqtt/embedded-broker.js';
import { freePort } from '../tools/mqtt/mosquitto.js';
import { startAedes } from './helpers/brokers.js';
import { CIFAR_TEST } from './helpers/shared.js';
import { buildTinyPackage, TINY_INPUT } from './helpers/tiny-package.js';

let pkg: ModelPackage;
test.before(async () => {
  pkg = await buildTinyPackage();
});

const FILES = ['cat/0002.jpg', 'ship/0003.jpg', 'frog/0004.jpg', 'truck/0005.jpg', 'bird/0006.jpg'];

test('on an MQTT 3.1.1 broker (aedes) the server finishes offloaded seams and images with the full model\'s answers, once per request id', async (t) => {
  const broker = await startAedes();
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 4 });
  const topics = deviceTopics('gate-1');
  const agent = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const answers = new Map<string, OffloadAnswer[]>();
  agent.on('message', (_topic, payload) => {
    const parsed = parseOffloadAnswer(payload);
    if (parsed.ok) answers.set(parsed.answer.requestId, [...(answers.get(parsed.answer.requestId) ?? []), parsed.answer]);
  });
  await agent.subscribeAsync(topics.offloadResponseFilter, { qos: 1 });

  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const labels = pkg.manifest.labels.cifar10!;
  const never = createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1, 1] }, 4);
  const expected = new Map<string, string>();
  for (const [i, file] of FILES.entries()) {
    engine.input.data.set(await imageFileToRgb(path.join(CIFAR_TEST, file), { width: TINY_INPUT, height: TINY_INPUT, resize: 'stretch' }));
    const full = engine.classify(never);
    const fullLabel = labels[full.label]!;
    const local = engine.classify(never, 1);
    const out = engine.chain.segments[1]!.output();
    const common = { packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey };
    expected.set(`f${i}`, fullLabel);
    await agent.publishAsync(
      topics.offloadRequest,
      encodeOffload({ ...common, kind: 'features', requestId: `f${i}`, segment: 2, dtype: 'int8', shape: [...out.shape], scale: out.quantization!.scale, zeroPoint: out.quantization!.zeroPoint, data: Int8Array.from(local.features) }),
      { qos: 1 },
    );
    expected.set(`i${i}`, fullLabel);
    const { readFile } = await import('node:fs/promises');
    await agent.publishAsync(topics.offloadRequest, encodeOffload({ ...common, kind: 'image', requestId: `i${i}`, format: 'jpeg', data: await readFile(path.join(CIFAR_TEST, file)) }), { qos: 1 });
  }
  // The same request again (a retry after a lost answer), and garbage.
  const retry = encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: 'i0', format: 'jpeg', data: new Uint8Array((await import('node:fs')).readFileSync(path.join(CIFAR_TEST, FILES[0]!))) });
  await agent.publishAsync(topics.offloadRequest, retry, { qos: 1 });
  await agent.publishAsync(topics.offloadRequest, Buffer.from('not an offload frame'), { qos: 1 });

  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (answers.size < expected.size || server.stats.rejected < 1 || server.stats.duplicates < 1)) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200));
  for (const [id, label] of expected) {
    t.is(answers.get(id)?.[0]?.label, label, id);
    t.is(answers.get(id)?.[0]?.modelHash, pkg.manifest.buildKey);
  }
  t.is(server.stats.answered, expected.size, 'each request computed once');
  t.is(server.stats.duplicates, 1);
  t.is(server.stats.rejected, 1);
  t.is(answers.get('i0')!.length, 2, 'the retry got the same answer again');
  t.deepEqual(answers.get('i0')![0], answers.get('i0')![1]);
  await agent.endAsync();
  await server.close();
  await broker.close();
});

test('a request for another model is refused, not answered with the wrong one', async (t) => {
  const broker = await startAedes();
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 4 });
  const agent = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const frame = encodeOffload({ packageName: pkg.manifest.name, modelHash: 'f'.repeat(64), kind: 'image', requestId: 'x1', format: 'jpeg', data: new Uint8Array([0xff, 0xd8, 0xff]) });
  await agent.publishAsync(deviceTopics('gate-2').offloadRequest, frame, { qos: 1 });
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && server.stats.rejected < 1) await new Promise((r) => setTimeout(r, 20));
  t.is(server.stats.rejected, 1);
  t.is(server.stats.answered, 0);
  await agent.endAsync();
  await server.close();
  await broker.close();
});

test('a server started before its broker waits for it with backoff, then answers; closing it while it waits stops the retries', async (t) => {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const mqttSettings = mqttSchema.parse({ url, reconnectMinMs: 100, reconnectMaxMs: 400 });
  const server = await OffloadServer.start({ pkg, brokerUrl: url, protocolVersion: 4, mqtt: mqttSettings });
  let connected = false;
  void server.connected.then(() => (connected = true));
  await new Promise((r) => setTimeout(r, 700));
  t.false(connected, 'nothing listens yet');

  const broker = await startEmbeddedBroker(port);
  const waitStarted = Date.now();
  await server.connected;
  t.true(Date.now() - waitStarted < 2000, 'the retries are capped at reconnectMaxMs');
  const agent = await mqtt.connectAsync(url, { protocolVersion: 4 });
  const topics = deviceTopics('gate-3');
  const answers: OffloadAnswer[] = [];
  agent.on('message', (_topic, payload) => {
    const parsed = parseOffloadAnswer(payload);
    if (parsed.ok) answers.push(parsed.answer);
  });
  await agent.subscribeAsync(topics.offloadResponseFilter, { qos: 1 });
  const { readFileSync } = await import('node:fs');
  const image = new Uint8Array(readFileSync(path.join(CIFAR_TEST, FILES[1]!)));
  await agent.publishAsync(topics.offloadRequest, encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: 'late-1', format: 'jpeg', data: image }), { qos: 1 });
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && answers.length === 0) await new Promise((r) => setTimeout(r, 20));
  t.is(answers[0]?.requestId, 'late-1');
  await agent.endAsync();
  await server.close();
  await broker.close();

  // A second server that never sees its broker: close() ends the waiting, and no attempt follows it.
  const lonelyPort = await freePort();
  const lonely = await OffloadServer.start({ pkg, brokerUrl: `mqtt://127.0.0.1:${lonelyPort}`, protocolVersion: 4, mqtt: mqttSettings });
  await lonely.close();
  const settled = await Promise.race([lonely.connected.then(() => 'settled'), new Promise((r) => setTimeout(r, 2000, 'still waiting'))]);
  t.is(settled, 'settled', '`connected` settles within 2 s of close() while the server waits for its broker');
  // Something listens on its port now: a retry still going would connect within reconnectMaxMs (400 ms).
  let attempts = 0;
  const listener = net.createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(lonelyPort, '127.0.0.1', resolve));
  await new Promise((r) => setTimeout(r, 1200));
  await new Promise((resolve) => listener.close(resolve));
  t.is(attempts, 0, 'a closed server stops retrying its broker');
});
