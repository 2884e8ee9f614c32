import path from 'node:path';
import test from 'ava';
import { controllerSchema, parseAgentConfig } from '../agent/config/agent-config.js';
import { EnergyController } from '../agent/controller/energy-controller.js';
import { deviceProfile } from '../agent/energy/device-profiles.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { FramePipeline } from '../agent/pipeline/frame-pipeline.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { Outbox } from '../agent/mqtt/outbox.js';
import { encodeOffload } from '../agent/mqtt/offload-codec.js';
import { Offloader } from '../agent/offload/offloader.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { formatStatusLine } from '../agent/pipeline/status-file.js';
import { LogReader, LogStore } from '../agent/store/log-store.js';
import { SimulatedBridge } from '../firmware-bridge/simulated.js';
import { simulatedPlatform } from '../firmware-bridge/index.js';
import { OffloadServer } from '../server/offload-server.js';
import { startAedes } from './helpers/brokers.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { CliProcess } from './helpers/cli-process.js';
import { buildTinyAgentPackage, TINY_INPUT } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

let pkg: ModelPackage;
let agentPackage: { modelsDir: string; buildConfig: string };
test.before(async () => {
  ({ pkg, ...agentPackage } = await buildTinyAgentPackage());
});

/** A gateway 2 °C under its 60 °C limit, on the tiny package, logging into `store`. */
function hotGateway(store: LogStore, offloader: Offloader): FramePipeline {
  const bridge = new SimulatedBridge({ clock: 'manual', ambientC: 58, initialTemperatureC: 58, thermalResistanceCPerW: 0.01 });
  const points = pkg.manifest.operatingPoints;
  return new FramePipeline({
    engine: MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }),
    source: new ReplaySource(CIFAR_TEST, { loop: false, seed: 2 }),
    ...simulatedPlatform(bridge, 1),
    controller: new EnergyController(points, controllerSchema.parse({ maxTemperatureC: 60 }), 20),
    staticPoint: points.find((p) => p.name === 'balanced')!,
    points,
    profile: deviceProfile('pi4'),
    log: store,
    target: { width: TINY_INPUT, height: TINY_INPUT, resize: 'stretch' },
    maxFrameRate: 20,
    offloader,
  });
}

test('a hot gateway leaves the deepest segment to the server: unsure frames are offloaded, answered once, and both answers are logged', async (t) => {
  const broker = await startAedes();
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 4 });
  const config = parseAgentConfig({ deviceId: 'hot-gw', offload: { mode: 'features', minConfidence: 0.95, deadlineMs: 5000 } });
  const dir = temporaryDir('edge-exit-offload-');
  const store = LogStore.open(path.join(dir, 'log.db'), { flushMs: 50 });
  const link = await new AgentLink({
    url: broker.url,
    deviceId: 'hot-gw',
    config,
    protocolVersion: 4,
    handlers: { onAnswer: (id, answer, late) => store.recordServerAnswer(id, { label: answer.label, confidence: answer.confidence, serverMs: answer.serverMs, decidedLocally: late }) },
  }).start();
  await waitFor('the server\'s retained availability', () => link.offloadServers === 1, 5000);
  // 2 °C of headroom under a 60 °C limit, and a server up: the controller cuts the depth and allows offload.
  const agent = hotGateway(store, new Offloader(link, pkg, config.offload, deviceProfile('pi4')));
  await agent.run(() => agent.stats.frames >= 60);
  t.true(agent.currentDecision!.maxExit < 3, `maxExit ${agent.currentDecision!.maxExit}`);
  t.true(agent.stats.offloaded > 0, 'some frames were unsure at the capped depth');
  const until = Date.now() + 10_000;
  while (link.offloadClient.counters.answers < agent.stats.offloaded && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.is(link.offloadClient.counters.answers, agent.stats.offloaded);
  t.is(server.stats.answered, agent.stats.offloaded, 'one computation per request');
  await new Promise((r) => setTimeout(r, 200));
  store.flush();
  const reader = LogReader.open(path.join(dir, 'log.db'));
  const offloaded = reader.queryInferences({ offloaded: true, limit: 1000 });
  t.is(offloaded.length, agent.stats.offloaded);
  for (const row of offloaded) {
    t.truthy(row.requestId);
    t.truthy(row.serverLabel, `request ${row.requestId} has the server's answer`);
  }
  reader.close();
  await link.stop();
  store.close();
  await server.close();
  await broker.close();
});

test('servers are known by their retained availability: heat cuts the depth only while one is up, and a stopped or killed server is forgotten', async (t) => {
  const broker = await startAedes();
  t.teardown(() => broker.close());
  const config = parseAgentConfig({ deviceId: 'watching-gw', offload: { mode: 'features', minConfidence: 0.95, deadlineMs: 2000 } });
  const link = await new AgentLink({ url: broker.url, deviceId: 'watching-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {} } }).start();
  t.teardown(() => link.stop());
  await waitFor('the broker link', () => link.connected, 5000);
  const store = LogStore.open(path.join(temporaryDir('edge-exit-servers-'), 'log.db'));
  t.teardown(() => store.close());
  const offloader = new Offloader(link, pkg, config.offload, deviceProfile('pi4'));

  // A broker but no server: sending the deepest segments away would only come back as timeouts.
  t.false(offloader.available);
  const alone = hotGateway(store, offloader);
  await alone.run(() => alone.stats.frames >= 20);
  t.is(alone.currentDecision!.maxExit, 3, 'no depth cut without a server');
  t.is(alone.stats.offloaded, 0);
  t.is(alone.status().offloadServers, 0);

  const inProcess = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 4, serverId: 'in-process' });
  await waitFor('the in-process server coming up', () => link.offloadServers === 1, 5000);
  const helped = hotGateway(store, offloader);
  await helped.run(() => helped.stats.frames >= 20);
  t.true(helped.currentDecision!.maxExit < 3, `maxExit ${helped.currentDecision!.maxExit} with a server up`);
  t.regex(formatStatusLine(helped.status()), /servers 1/);
  await inProcess.close();
  await waitFor('the stopped server being forgotten', () => link.offloadServers === 0, 5000);

  // A crash: the broker publishes the server's empty retained will, which also deletes its `online`.
  const crashing = new CliProcess(['server', '-c', agentPackage.buildConfig, '--broker', broker.url, '--protocol', '4', '--server-id', 'rack-7'], { EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir });
  t.teardown(() => crashing.stop());
  await waitFor('the server process coming up', () => link.offloadServers === 1, 60_000);
  t.deepEqual(link.offloadClient.offloadServerIds, ['rack-7'], 'it announces itself under the name --server-id gave it');
  t.is(await crashing.kill('SIGKILL'), null);
  await waitFor('the killed server being forgotten', () => link.offloadServers === 0, 5000);
  t.false(offloader.available);

  // Nothing stale is left retained: a gateway that connects now sees no server.
  const late = await new AgentLink({ url: broker.url, deviceId: 'late-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {} } }).start();
  t.teardown(() => late.stop());
  await waitFor('the late link', () => late.connected, 5000);
  await new Promise((r) => setTimeout(r, 300));
  t.is(late.offloadServers, 0);
});

test('a --server-id that cannot be a topic level is refused before anything is built or connected, naming the flag', async (t) => {
  for (const [args, shown] of [[['--server-id', 'rack/7'], /--server-id: server id "rack\/7" must be 1 to \d+ of letters, digits, _ \. -/], [['--server-id', 'x'.repeat(64), '--workers', '2', '--share-group', 'g'], /--server-id: .*each worker adds -1 to -2/]] as const) {
    const server = new CliProcess(['server', '-c', agentPackage.buildConfig, '--broker', 'mqtt://127.0.0.1:1', ...args], { EDGE_EXIT_MODELS_DIR: agentPackage.modelsDir });
    t.is(await server.exited, 1, server.output);
    t.regex(server.output, shown);
  }
});

test('without a broker, offload requests wait in a bounded queue and expire', async (t) => {
  const config = parseAgentConfig({ deviceId: 'lonely-gw', offload: { maxQueued: 3, queueExpiryMs: 1000 } });
  const link = await new AgentLink({ url: 'mqtt://127.0.0.1:1', deviceId: 'lonely-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {} } }).start();
  for (let i = 0; i < 5; i++) t.is(link.offload(`q${i}`, Buffer.from('frame'), 1000), 'queued');
  t.is(link.offloadClient.queuedCount, 3);
  t.is(link.offloadClient.counters.droppedFull, 2);
  link.offloadClient.sweep(2500);
  t.is(link.offloadClient.queuedCount, 0);
  t.is(link.offloadClient.counters.expired, 3);
  await link.stop();
});

test('requests made without a broker survive an agent restart in the SQLite outbox and are answered once a broker appears', async (t) => {
  const dir = temporaryDir('edge-exit-outbox-');
  const outboxFile = path.join(dir, 'outbox.db');
  const config = parseAgentConfig({ deviceId: 'restarting-gw', offload: { queueExpiryMs: 60_000 } });
  const broker = await startAedes();
  const port = Number(new URL(broker.url).port);
  await broker.close();
  // First life: the broker is gone; the requests wait on disk.
  const first = await new AgentLink({ url: `mqtt://127.0.0.1:${port}`, deviceId: 'restarting-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {} }, outbox: new Outbox(outboxFile) }).start();
  const image = (await import('node:fs')).readFileSync(path.join(CIFAR_TEST, 'airplane', '0009.jpg'));
  const frame = (id: string) => encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: id, format: 'jpeg', data: image });
  for (const id of ['ob-1', 'ob-2', 'ob-3']) t.is(first.offload(id, frame(id)), 'queued');
  await first.stop();
  // Second life: a broker and a server on the same address.
  const { startEmbeddedBroker } = await import('../agent/mqtt/embedded-broker.js');
  const revived = await startEmbeddedBroker(port);
  const server = await OffloadServer.start({ pkg, brokerUrl: revived.url, protocolVersion: 4 });
  const answered: string[] = [];
  const outbox = new Outbox(outboxFile);
  t.is(outbox.all().length, 3);
  const second = await new AgentLink({ url: revived.url, deviceId: 'restarting-gw', config, protocolVersion: 4, handlers: { onAnswer: (id) => answered.push(id) }, outbox }).start();
  const deadline = Date.now() + 10_000;
  while (answered.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(answered.sort(), ['ob-1', 'ob-2', 'ob-3']);
  t.is(outbox.all().length, 0, 'answered requests leave the outbox');
  await second.stop();
  outbox.close();
  await server.close();
  await revived.close();
});
