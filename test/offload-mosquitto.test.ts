import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { createExitPolicy } from '../agent/exit-policy/policy.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { encodeOffload, parseOffloadAnswer } from '../agent/mqtt/offload-codec.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { readImageFolder } from '../agent/datasets/image-folder.js';
import { OffloadServer } from '../server/offload-server.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { MOSQUITTO, startMosquitto } from './helpers/brokers.js';
import { CIFAR_TEST } from './helpers/shared.js';
import { buildTinyPackage, TINY_INPUT } from './helpers/tiny-package.js';

let pkg: ModelPackage;
test.before(async () => {
  if (MOSQUITTO) pkg = await buildTinyPackage();
});

// CI installs Mosquitto from Debian's packages; a developer machine without it skips, saying so.
// Serial: each test runs its own broker and server processes, and timing matters to them.
const withMosquitto = MOSQUITTO ? test.serial : test.skip;

withMosquitto('two server workers on one shared subscription answer every MQTT 5 request exactly once, matching the full model', async (t) => {
  const broker = await startMosquitto();
  const workers = await Promise.all([1, 2].map(() => OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5, shareGroup: 'edge-exit-servers' })));
  const topics = deviceTopics('gate-7');
  const agent = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  const replyTopic = `${topics.prefix}/gate-7/replies`;
  const answers = new Map<string, { label: string; correlation: string }[]>();
  agent.on('message', (_topic, payload, packet) => {
    const parsed = parseOffloadAnswer(payload);
    if (!parsed.ok) return;
    const list = answers.get(parsed.answer.requestId) ?? [];
    list.push({ label: parsed.answer.label, correlation: Buffer.from(packet.properties?.correlationData ?? []).toString() });
    answers.set(parsed.answer.requestId, list);
  });
  await agent.subscribeAsync(replyTopic, { qos: 1 });

  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const labels = pkg.manifest.labels.cifar10!;
  const never = createExitPolicy({ policy: 'max-probability', thresholds: [1, 1, 1, 1] }, 4);
  const images = readImageFolder(CIFAR_TEST).samples.filter((_, i) => i % 125 === 0);
  const expected = new Map<string, string>();
  for (const [i, image] of images.entries()) {
    engine.input.data.set(await imageFileToRgb(image.file, { width: TINY_INPUT, height: TINY_INPUT, resize: 'stretch' }));
    expected.set(`r${i}`, labels[engine.classify(never).label]!);
    const cut = i % 3;
    const local = engine.classify(never, cut);
    const out = engine.chain.segments[cut]!.output();
    const frame = encodeOffload({
      packageName: pkg.manifest.name,
      modelHash: pkg.manifest.buildKey,
      kind: 'features',
      requestId: `r${i}`,
      segment: cut + 1,
      dtype: 'int8',
      shape: [...out.shape],
      scale: out.quantization!.scale,
      zeroPoint: out.quantization!.zeroPoint,
      data: Int8Array.from(local.features),
    });
    await agent.publishAsync(topics.offloadRequest, frame, { qos: 1, properties: { responseTopic: replyTopic, correlationData: Buffer.from(`c${i}`) } });
  }
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && answers.size < expected.size) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  for (const [id, label] of expected) {
    const got = answers.get(id) ?? [];
    t.is(got.length, 1, `${id} answered ${got.length} times`);
    t.is(got[0]?.label, label, id);
    t.is(got[0]?.correlation, `c${id.slice(1)}`);
  }
  const answered = workers.map((w) => w.stats.answered);
  t.is(answered[0]! + answered[1]!, expected.size);
  t.true(answered[0]! > 0 && answered[1]! > 0, `the shared subscription split the work: ${answered.join(' + ')}`);
  await agent.endAsync();
  await Promise.all(workers.map((w) => w.close()));
  await broker.stop();
});

withMosquitto('mosquitto_pub can send an image offload that the server answers on the 3.1.1 response topic', async (t) => {
  const broker = await startMosquitto();
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5 });
  const topics = deviceTopics('gate-9');
  const listener = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const got: string[] = [];
  listener.on('message', (_t, payload) => {
    const parsed = parseOffloadAnswer(payload);
    if (parsed.ok) got.push(parsed.answer.label);
  });
  await listener.subscribeAsync(topics.offloadResponseFilter, { qos: 1 });
  const { execFileSync } = await import('node:child_process');
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const os = await import('node:os');
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'edge-exit-pub-')), 'frame.bin');
  writeFileSync(file, encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: 'cli-1', format: 'jpeg', data: readFileSync(path.join(CIFAR_TEST, 'horse', '0007.jpg')) }));
  const port = new URL(broker.url).port;
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', topics.offloadRequest, '-f', file]);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && got.length === 0) await new Promise((r) => setTimeout(r, 50));
  t.is(got.length, 1);
  t.true(pkg.manifest.labels.cifar10!.includes(got[0]!));
  await listener.endAsync();
  await server.close();
  await broker.stop();
});

withMosquitto('a broker restart while offloads stream loses no request: each is answered, late ones recorded as decided locally first', async (t) => {
  const broker = await startMosquitto();
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5 });
  const config = parseAgentConfig({ deviceId: 'restart-gw', offload: { deadlineMs: 300, queueExpiryMs: 60_000 } });
  const answers = new Map<string, { label: string; late: boolean }>();
  const link = new AgentLink({
    url: broker.url,
    deviceId: 'restart-gw',
    config,
    protocolVersion: 5,
    handlers: { onAnswer: (id, answer, late) => answers.set(id, { label: answer.label, late }) },
  });
  const until = (condition: () => boolean, ms: number) =>
    new Promise<void>((resolve) => {
      const deadline = Date.now() + ms;
      const check = () => (condition() || Date.now() > deadline ? resolve() : setTimeout(check, 20));
      check();
    });
  await until(() => link.connected, 5000);
  const image = readFileSync(path.join(CIFAR_TEST, 'deer', '0008.jpg'));
  const sent: string[] = [];
  for (let i = 0; i < 60; i++) {
    if (i === 20) await broker.stop();
    if (i === 40) await broker.start();
    const id = `rs-${i}`;
    link.offload(id, encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: id, format: 'jpeg', data: image }));
    sent.push(id);
    await new Promise((r) => setTimeout(r, 30));
  }
  await until(() => answers.size === sent.length, 30_000);
  t.deepEqual(sent.filter((id) => !answers.has(id)), [], 'every request was answered');
  t.true([...answers.values()].some((a) => a.late), 'requests held over the outage were first decided locally');
  t.is(new Set([...answers.values()].map((a) => a.label)).size, 1, 'the same image got the same answer every time');
  t.is(server.stats.answered, sent.length, 'each request computed once, however often it was sent');
  await link.close();
  await server.close();
  await broker.stop();
});
