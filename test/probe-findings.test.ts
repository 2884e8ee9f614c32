import fs from 'node:fs';
import test from 'ava';
import mqtt from 'mqtt';
import { parseAgentConfig, publicConfig, redactUrl } from '../agent/config/agent-config.js';
import { ConfigError } from '../agent/config/agent-config.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { encodeOffload } from '../agent/mqtt/offload-codec.js';
import { parseConfigSet } from '../agent/mqtt/payloads.js';
import { OffloadServer } from '../server/offload-server.js';
import { mosquittoTest, startAedes, startMosquitto } from './helpers/brokers.js';
import { CliProcess } from './helpers/cli-process.js';
import { fillUp, mountTmpfs } from './helpers/tmpfs.js';
import { loadModelPackage } from '../agent/model-package/load.js';
import path from 'node:path';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { CAT_PHOTO } from './helpers/shared.js';
import { buildTinyAgentPackage, buildTinyPackage } from './helpers/tiny-package.js';
import { AgentProcess } from './helpers/agent-process.js';
import { waitFor } from './helpers/wait.js';

/* What an adversarial probe broke (issue 25), each against the real broker or runtime. */

const buildTinyPackageSync = (modelsDir: string) => loadModelPackage(path.join(modelsDir, 'tiny_cifar10'));

let pkg: ModelPackage;
test.before(async () => {
  pkg = await buildTinyPackage();
});
const withMosquitto = mosquittoTest('mosquitto_pub');

withMosquitto('an MQTT 5 request naming a wildcard or another device\'s topic as its response topic is refused and counted; the server stays up and answers the next one', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 5 });
  t.teardown(() => server.close());
  const watch = await MqttWatch.connect(broker.url, ['#']);
  t.teardown(() => watch.close());
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  t.teardown(() => client.endAsync());
  const image = fs.readFileSync(CAT_PHOTO);
  const frame = (requestId: string) => encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId, format: 'bmp', data: image });
  const send = (requestId: string, responseTopic?: string) =>
    client.publishAsync('edge-exit/p9/offload/request', frame(requestId), { qos: 1, ...(responseTopic ? { properties: { responseTopic, correlationData: Buffer.from(requestId) } } : {}) });

  await send('wild', 'x/#');
  await send('victim', 'edge-exit/victim/config/set');
  await send('outside', 'elsewhere/topic');
  await waitFor('three refusals', () => server.stats.foreignResponseTopics === 3, 20_000);
  await send('good', 'edge-exit/p9/offload/response/good');
  const answer = await watch.waitFor('the honest answer', (m) => m.topic === 'edge-exit/p9/offload/response/good', { timeoutMs: 20_000 });
  t.deepEqual(answer.packet.properties?.correlationData, Buffer.from('good'));
  t.deepEqual(watch.on('edge-exit/victim/config/set').map((m) => m.payload.length), [], 'nothing reached the victim apart from the request itself');
  t.is(watch.messages.filter((m) => m.topic === 'elsewhere/topic').length, 0);
  t.is(server.stats.answered, 1);
});

test('a seam of the wrong size is refused, never answered with the previous request\'s values', (t) => {
  const engine = MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 });
  const last = engine.exitCount - 1;
  const size = engine.chain.segments[last]!.output().data.length;
  t.notThrows(() => engine.finishFrom(last, new Int8Array(size)));
  t.throws(() => engine.finishFrom(last, new Int8Array(10)), { message: new RegExp(`has ${size} values .* got 10`) });
  t.throws(() => engine.finishFrom(0, new Int8Array(10)), { message: /got 10/ });
});

test('config/set nested thousands of levels deep is refused with its id kept', (t) => {
  let nested = '0';
  for (let i = 0; i < 5000; i++) nested = `[${nested}]`;
  const result = parseConfigSet(Buffer.from(`{"id":"deep-1","set":{"policy":{"thresholds":${nested}}}}`));
  t.false(result.ok);
  if (result.ok) return;
  t.is(result.id, 'deep-1');
  t.regex(result.reason, /nested deeper than 16 levels/);
});

test('a password holding @ is redacted whole, and an mqtt section of the wrong type never echoes it', (t) => {
  t.is(redactUrl('mqtt://gate-3:S3cr3t@XYZZY-3@broker.local:1883'), 'mqtt://gate-3:***@broker.local:1883');
  const config = parseAgentConfig({ mqtt: { url: 'mqtt://gate-3:S3cr3t@XYZZY-3@broker.local:1883' } });
  t.false(JSON.stringify(publicConfig(config)).includes('XYZZY'));
  const error = t.throws(() => parseAgentConfig({ mqtt: [{ url: 'mqtt://u:S3cr3t@XYZZY-3@h', password: 'S3cr3t@XYZZY-3' }] }), { instanceOf: ConfigError });
  t.false(error.message.includes('XYZZY'), error.message);
  t.false(error.message.includes('S3cr3t'), error.message);
});

test('an infinite number is shown as it is in errors, not as null', (t) => {
  const error = t.throws(() => parseAgentConfig({ maxFrameRate: Infinity }), { instanceOf: ConfigError });
  t.regex(error.message, /maxFrameRate: .*\(got Infinity\)/);
});

test('an invalid topic prefix stops the agent with exit status 1, its embedded broker closed', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  for (const prefix of ['#', 'a/+', '/lead', 'a//b']) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const agent = AgentProcess.start({ modelsDir, buildConfig }, { deviceId: 'prefix-gw', mqtt: { prefix, embeddedPort: port } });
    t.is(await agent.exited, 1, agent.output);
    t.regex(agent.output, /prefix/i);
    await t.throwsAsync(mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 2000 }), undefined, 'nothing listens any more');
  }
});

test('a flood of bad offload frames costs one warning, not one per frame', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const broker = await startAedes();
  t.teardown(() => broker.close());
  const server = new CliProcess(['server', '-c', buildConfig, '--broker', broker.url, '--protocol', '4', '--server-id', 'flooded'], { EDGE_EXIT_MODELS_DIR: modelsDir });
  t.teardown(() => server.stop());
  await server.waitForOutput(/subscribed to/);
  const watch = await MqttWatch.connect(broker.url, ['edge-exit/flood-gw/offload/response/+'], { protocolVersion: 4 });
  t.teardown(() => watch.close());
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  t.teardown(() => client.endAsync());
  for (let i = 0; i < 300; i++) await client.publishAsync('edge-exit/flood-gw/offload/request', Buffer.from(`not a frame ${i}`), { qos: 1 });
  // Requests are handled in order: once this one is answered, the 300 before it were seen.
  const image = fs.readFileSync(CAT_PHOTO);
  const pkg = buildTinyPackageSync(modelsDir);
  await client.publishAsync('edge-exit/flood-gw/offload/request', encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: 'after', format: 'bmp', data: image }), { qos: 1 });
  await watch.waitFor('the answer after the flood', (m) => m.topic.endsWith('/after'), { timeoutMs: 30_000 });
  const warnings = server.output.split('\n').filter((line) => line.includes('refused'));
  t.is(warnings.length, 1, warnings.join('\n'));
});

test('a refused login given in the URL names that user, never "no username is set", and never the password', async (t) => {
  const { describeConnectionError } = await import('../agent/mqtt/connection-errors.js');
  const error = Object.assign(new Error('Connection refused: Bad username or password'), { code: 4 });
  const message = describeConnectionError(error, 'mqtt://gate-3:S3cr3t@XYZZY-3@broker.local:1883', parseAgentConfig({}).mqtt);
  t.regex(message, /user gate-3/);
  t.false(message.includes('no username is set'));
  t.false(message.includes('S3cr3t') || message.includes('XYZZY'), message);
});

const agentTmpfs = mountTmpfs('8m', 'edge-exit-agent-full-');
test.after.always(() => agentTmpfs?.unmount());

(agentTmpfs ? test.serial : test.skip)('on a full disk (a real 8 MiB tmpfs) the agent keeps classifying, says logging is failing, and stops cleanly with no temp file left', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const dir = agentTmpfs!.dir;
  const port = 20_000 + Math.floor(Math.random() * 30_000);
  const agent = AgentProcess.start({ modelsDir, buildConfig }, { deviceId: 'full-gw', logs: { path: path.join(dir, 'edge-exit.db') }, mqtt: { embeddedPort: port }, statusIntervalMs: 200 });
  await agent.waitForOutput(/frames/);
  const ballast = fillUp(dir);
  await agent.waitForOutput(/LOGGING FAILING|cannot write the status file/, 30_000);
  const framesSoFar = () => Math.max(0, ...[...agent.output.matchAll(/(\d+) frames /g)].map((m) => Number(m[1])));
  const before = framesSoFar();
  await waitFor('frames classified with the disk full', () => framesSoFar() >= before + 5, 30_000);
  t.is(await agent.stop(), 0, agent.output.slice(-2000));
  t.deepEqual(fs.readdirSync(dir).filter((file) => file.endsWith('.tmp')), []);
  fs.rmSync(ballast);
});
