import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { EnergyController } from '../agent/controller/energy-controller.js';
import { controllerSchema } from '../agent/config/agent-config.js';
import { deviceProfile } from '../agent/energy/device-profiles.js';
import { MultiExitEngine } from '../agent/inference/multi-exit-engine.js';
import { FramePipeline } from '../agent/pipeline/frame-pipeline.js';
import type { ModelPackage } from '../agent/model-package/load.js';
import { FolderSource } from '../agent/sources/folder-source.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { LogReader, LogStore } from '../agent/store/log-store.js';
import { SimulatedBridge } from '../firmware-bridge/simulated.js';
import { devicePlatform, simulatedPlatform } from '../firmware-bridge/index.js';
import { SysfsBridge } from '../firmware-bridge/sysfs/sysfs-bridge.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { buildTinyPackage, TINY_INPUT } from './helpers/tiny-package.js';

let pkg: ModelPackage;
test.before(async () => {
  pkg = await buildTinyPackage();
});

const target = { width: TINY_INPUT, height: TINY_INPUT, resize: 'stretch' as const };

function agentWith(options: { bridge: SimulatedBridge | SysfsBridge; source: ReplaySource | FolderSource; store: LogStore; controlled: boolean }) {
  const points = pkg.manifest.operatingPoints;
  return new FramePipeline({
    engine: MultiExitEngine.fromPackage(pkg, { backend: 'xnnpack', threads: 1 }),
    source: options.source,
    ...(options.bridge instanceof SimulatedBridge ? simulatedPlatform(options.bridge, 6) : devicePlatform(options.bridge)),
    controller: options.controlled ? new EnergyController(points, controllerSchema.parse({ minDwellS: 5 }), 40) : undefined,
    staticPoint: points.find((p) => p.name === 'balanced')!,
    points,
    profile: deviceProfile('pi4'),
    log: options.store,
    target,
    maxFrameRate: 40,
  });
}

test('the agent classifies a labelled replay, drains the simulated battery, and the controller walks down the ladder, all in the SQLite log', async (t) => {
  const dir = temporaryDir('edge-exit-agent-');
  const store = LogStore.open(path.join(dir, 'log.db'));
  const bridge = new SimulatedBridge({ clock: 'manual', capacityWh: 0.02, ambientC: 35 });
  const agent = agentWith({ bridge, source: new ReplaySource(CIFAR_TEST, { loop: true, seed: 3 }), store, controlled: true });
  await agent.run(() => ((agent.status().stateOfCharge ?? 1) <= 0.0));
  store.close();
  t.true(agent.stats.frames > 100, `${agent.stats.frames} frames`);
  t.true(bridge.elapsedS > 0);
  const reader = LogReader.open(path.join(dir, 'log.db'));
  const rows = reader.queryInferences({ limit: 100000 });
  t.is(rows.length, agent.stats.frames);
  t.true(rows.every((row) => row.energyJ !== null && row.energyJ! > 0));
  const accuracy = reader.accuracy();
  t.is(accuracy.overall.n, agent.stats.frames);
  t.is(accuracy.overall.correct, agent.stats.correct);
  const decisions = reader.controllerTimeline({});
  t.true(decisions.length >= 3, `${decisions.length} decisions`);
  const points = decisions.map((d) => d.operatingPoint);
  t.is(points[0], 'balanced', 'a full battery that is not charging starts on balanced');
  t.true(decisions.some((d) => /battery \d+%, (low|at the reserve)/.test(d.reason)), decisions.map((d) => d.reason).join('\n'));
  t.true(reader.telemetry({}).length > 0);
  reader.close();
});

test('an unreadable image in a watched folder is skipped with a warning and the agent goes on', async (t) => {
  const dir = temporaryDir('edge-exit-watch-');
  const inbox = path.join(dir, 'inbox');
  fs.mkdirSync(inbox);
  const cat = path.join(CIFAR_TEST, 'cat', '0001.jpg');
  fs.copyFileSync(cat, path.join(inbox, 'a.jpg'));
  fs.writeFileSync(path.join(inbox, 'b.jpg'), fs.readFileSync(cat).subarray(0, 30));
  fs.copyFileSync(cat, path.join(inbox, 'c.jpg'));
  const store = LogStore.open(path.join(dir, 'log.db'));
  const source = new FolderSource(inbox, { pollMs: 20 });
  const agent = agentWith({ bridge: new SimulatedBridge({ clock: 'manual' }), source, store, controlled: false });
  await agent.run(() => agent.stats.frames + agent.stats.skipped >= 3);
  await source.close();
  store.close();
  t.is(agent.stats.frames, 2);
  t.is(agent.stats.skipped, 1);
  const reader = LogReader.open(path.join(dir, 'log.db'));
  t.deepEqual(reader.queryInferences({}).map((r) => r.frameId), ['a.jpg', 'c.jpg']);
  reader.close();
});

test('a missing battery sensor and a malformed thermal zone degrade gracefully: the agent classifies and reports what it lacks', async (t) => {
  const sys = temporaryDir('edge-exit-fake-sys-');
  const zone = path.join(sys, 'class', 'thermal', 'thermal_zone0');
  fs.mkdirSync(zone, { recursive: true });
  fs.writeFileSync(path.join(zone, 'type'), 'cpu-thermal\n');
  fs.writeFileSync(path.join(zone, 'temp'), 'garbage\n');
  const dir = temporaryDir('edge-exit-agent-');
  const store = LogStore.open(path.join(dir, 'log.db'));
  const bridge = new SysfsBridge({ root: sys });
  const agent = agentWith({ bridge, source: new ReplaySource(CIFAR_TEST, { loop: false, seed: 1 }), store, controlled: true });
  await agent.run(() => agent.stats.frames >= 20);
  store.close();
  t.is(agent.stats.frames, 20);
  const status = agent.status();
  t.is(status.stateOfCharge, undefined);
  t.is(status.temperatureC, undefined);
  t.true(status.missingReadings.length > 0, JSON.stringify(status.missingReadings));
  t.is(agent.currentDecision?.level, 'normal');
  t.regex(agent.currentDecision!.reason, /battery level unknown/);
});

test('with the disk full the agent keeps classifying and the log says writes are failing', async (t) => {
  const dir = temporaryDir('edge-exit-agent-');
  const store = LogStore.open(path.join(dir, 'log.db'), { flushRows: 8, retryMs: 50 });
  const pageCount = store.database.pragma('page_count', { simple: true }) as number;
  store.database.pragma(`max_page_count = ${pageCount + 2}`);
  const agent = agentWith({ bridge: new SimulatedBridge({ clock: 'manual' }), source: new ReplaySource(CIFAR_TEST, { loop: true, seed: 5 }), store, controlled: false });
  await agent.run(() => agent.stats.frames >= 300);
  t.is(agent.stats.frames, 300);
  const health = store.health();
  t.false(health.ok);
  t.regex(health.reason ?? '', /full/);
  store.close();
});
