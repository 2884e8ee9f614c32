import path from 'node:path';
import test from 'ava';
import { controllerSchema, parseAgentConfig } from '../agent/config/agent-config.js';
import { EnergyController } from '../agent/controller/energy-controller.js';
import { deviceProfile } from '../agent/energy/device-profiles.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { EdgeAgent } from '../agent/loop/edge-agent.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { AgentLink } from '../agent/mqtt/agent-link.js';
import { Outbox } from '../agent/mqtt/outbox.js';
import { encodeOffload } from '../agent/mqtt/offload-codec.js';
import { Offloader } from '../agent/offload/offloader.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { LogReader, LogStore } from '../agent/store/log-store.js';
import { SimulatedBridge } from '../firmware-bridge/simulated.js';
import { OffloadServer } from '../server/offload-server.js';
import { startAedes } from './helpers/brokers.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { buildTinyPackage, TINY_INPUT } from './helpers/tiny-package.js';

let pkg: ModelPackage;
test.before(async () => {
  pkg = await buildTinyPackage();
});

test('a hot gateway leaves the deepest segment to the server: unsure frames are offloaded, answered once, and both answers are logged', async (t) => {
  const broker = await startAedes();
  const server = await OffloadServer.start({ pkg, brokerUrl: broker.url, protocolVersion: 4 });
  const config = parseAgentConfig({ deviceId: 'hot-gw', offload: { mode: 'features', minConfidence: 0.95, deadlineMs: 5000 } });
  const dir = temporaryDir('edge-exit-offload-');
  const store = LogStore.open(path.join(dir, 'log.db'), { flushMs: 50 });
  const link = new AgentLink({
    url: broker.url,
    deviceId: 'hot-gw',
    config,
    protocolVersion: 4,
    handlers: { onAnswer: (id, answer, late) => store.recordServerAnswer(id, { label: answer.label, confidence: answer.confidence, serverMs: answer.serverMs, decidedLocally: late }) },
  });
  const deadline = Date.now() + 5000;
  while (!link.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.true(link.connected);
  // 2 °C of headroom under a 60 °C limit: the controller cuts the depth and allows offload.
  const bridge = new SimulatedBridge({ clock: 'manual', ambientC: 58, initialTemperatureC: 58, thermalResistanceCPerW: 0.01 });
  const points = pkg.manifest.operatingPoints;
  const agent = new EdgeAgent({
    engine: MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }),
    source: new ReplaySource(CIFAR_TEST, { loop: false, seed: 2 }),
    bridge,
    controller: new EnergyController(points, controllerSchema.parse({ maxTemperatureC: 60 }), 20),
    staticPoint: points.find((p) => p.name === 'balanced')!,
    points,
    profile: deviceProfile('pi4'),
    log: store,
    target: { width: TINY_INPUT, height: TINY_INPUT, resize: 'stretch' },
    maxFrameRate: 20,
    clock: bridge.clock,
    offloader: new Offloader(link, pkg, config.offload, deviceProfile('pi4')),
  });
  await agent.run(() => agent.stats.frames >= 60);
  t.true(agent.currentDecision!.maxExit < 3, `maxExit ${agent.currentDecision!.maxExit}`);
  t.true(agent.stats.offloaded > 0, 'some frames were unsure at the capped depth');
  const until = Date.now() + 10_000;
  while (link.counters.answers < agent.stats.offloaded && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.is(link.counters.answers, agent.stats.offloaded);
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
  await link.close();
  store.close();
  await server.close();
  await broker.close();
});

test('without a broker, offload requests wait in a bounded queue and expire', async (t) => {
  const config = parseAgentConfig({ deviceId: 'lonely-gw', offload: { maxQueued: 3, queueExpiryMs: 1000 } });
  const link = new AgentLink({ url: 'mqtt://127.0.0.1:1', deviceId: 'lonely-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {} } });
  for (let i = 0; i < 5; i++) t.is(link.offload(`q${i}`, Buffer.from('frame'), 1000), 'queued');
  t.is(link.queuedCount, 3);
  t.is(link.counters.droppedFull, 2);
  link.sweep(2500);
  t.is(link.queuedCount, 0);
  t.is(link.counters.expired, 3);
  await link.close();
});

test('requests made without a broker survive an agent restart in the SQLite outbox and are answered once a broker appears', async (t) => {
  const dir = temporaryDir('edge-exit-outbox-');
  const outboxFile = path.join(dir, 'outbox.db');
  const config = parseAgentConfig({ deviceId: 'restarting-gw', offload: { queueExpiryMs: 60_000 } });
  const broker = await startAedes();
  const port = Number(new URL(broker.url).port);
  await broker.close();
  // First life: the broker is gone; the requests wait on disk.
  const first = new AgentLink({ url: `mqtt://127.0.0.1:${port}`, deviceId: 'restarting-gw', config, protocolVersion: 4, handlers: { onAnswer: () => {} }, outbox: new Outbox(outboxFile) });
  const image = (await import('node:fs')).readFileSync(path.join(CIFAR_TEST, 'airplane', '0009.jpg'));
  const frame = (id: string) => encodeOffload({ packageName: pkg.manifest.name, modelHash: pkg.manifest.buildKey, kind: 'image', requestId: id, format: 'jpeg', data: image });
  for (const id of ['ob-1', 'ob-2', 'ob-3']) t.is(first.offload(id, frame(id)), 'queued');
  await first.close();
  // Second life: a broker and a server on the same address.
  const { startEmbeddedBroker } = await import('../agent/mqtt/embedded-broker.js');
  const revived = await startEmbeddedBroker(port);
  const server = await OffloadServer.start({ pkg, brokerUrl: revived.url, protocolVersion: 4 });
  const answered: string[] = [];
  const outbox = new Outbox(outboxFile);
  t.is(outbox.all().length, 3);
  const second = new AgentLink({ url: revived.url, deviceId: 'restarting-gw', config, protocolVersion: 4, handlers: { onAnswer: (id) => answered.push(id) }, outbox });
  const deadline = Date.now() + 10_000;
  while (answered.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(answered.sort(), ['ob-1', 'ob-2', 'ob-3']);
  t.is(outbox.all().length, 0, 'answered requests leave the outbox');
  await second.close();
  outbox.close();
  await server.close();
  await revived.close();
});
