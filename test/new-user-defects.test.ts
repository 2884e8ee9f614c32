import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { loadAgentConfig } from '../agent/config/agent-config.js';
import { StatusReporter } from '../agent/app/status-reporter.js';
import { EnergyController } from '../agent/controller/energy-controller.js';
import { controllerSchema } from '../agent/config/agent-config.js';
import { LogReader } from '../agent/store/log-store.js';
import { parseConfigSet } from '../agent/mqtt/payloads.js';
import { AgentProcess, type AgentPackage } from './helpers/agent-process.js';
import { CliProcess } from './helpers/cli-process.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { startAedes } from './helpers/brokers.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * Each test here is one defect a new user hit, run the way that user ran into it:
 * the real `edge-exit` process, its embedded aedes broker, its SQLite log.
 */

let agentPackage: AgentPackage;
let classes: string[];
test.before(async () => {
  const built = await buildTinyAgentPackage();
  agentPackage = { modelsDir: built.modelsDir, buildConfig: built.buildConfig };
  classes = Object.values(built.pkg.manifest.labels)[0]!;
});

const freePort = () => 20_000 + Math.floor(Math.random() * 30_000);

/** An agent on its embedded broker (no mqtt.url), as `npm start` runs it. */
function embeddedAgent(deviceId: string, extra: Record<string, unknown> = {}, frames?: number) {
  const port = freePort();
  const agent = AgentProcess.start(agentPackage, { deviceId, mqtt: { embeddedPort: port }, ...extra }, frames === undefined ? {} : { frames });
  return { agent, url: `mqtt://127.0.0.1:${port}` };
}

test('1: local and offloaded answers are logged as class names, so accuracy and --label filters agree', async (t) => {
  const { agent } = embeddedAgent('labels-gw', { offload: { minConfidence: 0.99, mode: 'features' } }, 40);
  t.is(await agent.exited, 0, agent.output);
  const rows = agent.inferences();
  t.true(rows.length >= 40);
  for (const row of rows) {
    t.true(classes.includes(row.label), `label ${row.label} is a class name`);
    t.true(row.trueLabel === null || classes.includes(row.trueLabel), `true label ${row.trueLabel} is a class name`);
    if (row.serverLabel !== null) t.true(classes.includes(row.serverLabel), `server label ${row.serverLabel} is a class name`);
  }
  const someLabel = rows[0]!.label;
  const reader = LogReader.open(agent.logFile);
  try {
    const filtered = reader.queryInferences({ label: someLabel });
    t.is(filtered.length, rows.filter((r) => r.label === someLabel).length);
    t.true(filtered.length > 0);
  } finally {
    reader.close();
  }
});

test('2: Ctrl-C stops the agent promptly while an outside client is connected to its embedded broker; a second one exits 130 with a message', async (t) => {
  const { agent, url } = embeddedAgent('ctrl-c-gw');
  await agent.waitForOutput(/frames/);
  const outsider = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  await outsider.subscribeAsync('edge-exit/#');
  const stopping = Date.now();
  const code = await agent.stop();
  const seconds = (Date.now() - stopping) / 1000;
  await outsider.endAsync(true);
  t.is(code, 0, agent.output);
  // The defect was 15-24 s; the agent's own bound on waiting for answers is 5 s.
  t.true(seconds < 8, `stopped in ${seconds.toFixed(1)} s`);

  // A stop that waits for offload answers (up to 5 s) from a broker with no server: the second Ctrl-C comes in that wait.
  const quietBroker = await startAedes();
  const announcer = await mqtt.connectAsync(quietBroker.url, { protocolVersion: 4 });
  await announcer.publishAsync('edge-exit/servers/silent/availability', 'online', { retain: true, qos: 1 });
  await announcer.endAsync();
  const second = AgentProcess.start(agentPackage, { deviceId: 'twice-gw', mqtt: { url: quietBroker.url, protocolVersion: 4 },
    // Frames stop before the final exit, so unsure ones are offloaded.
    controller: { enabled: false },
    policy: { maxExit: 2 },
    offload: { minConfidence: 1, deadlineMs: 60_000 },
  });
  await second.waitForOutput(/mqtt: connected/);
  await second.waitForOutput(/offloaded [1-9]/);
  second.signal('SIGINT');
  await second.waitForOutput(/SIGINT: stopping/);
  second.signal('SIGINT');
  t.is(await second.exited, 130, second.output);
  await quietBroker.close();
  t.regex(second.output, /SIGINT again: exiting now/);
});

test('3: a second agent on a taken embedded port says so and exits 1', async (t) => {
  const { agent } = embeddedAgent('first-gw');
  await agent.waitForOutput(/frames/);
  const port = (JSON.parse(fs.readFileSync(agent.configFile, 'utf8')) as { mqtt: { embeddedPort: number } }).mqtt.embeddedPort;
  const second = AgentProcess.start(agentPackage, { deviceId: 'second-gw', mqtt: { embeddedPort: port } });
  const code = await second.exited;
  await agent.stop();
  t.is(code, 1, second.output);
  t.regex(second.output, new RegExp(`port ${port} is taken`));
});

test('4: hand-set thresholds suspend the controller visibly and reversibly; naming a point while the controller is on is refused with the reason', async (t) => {
  const { agent, url } = embeddedAgent('thresholds-gw', { telemetryIntervalMs: 200 });
  await agent.waitForOutput(/frames/);
  const base = 'edge-exit/thresholds-gw';
  const watch = await MqttWatch.connect(url, [`${base}/config/response`, `${base}/telemetry`], { protocolVersion: 4 });
  t.teardown(() => watch.close());
  const client = await mqtt.connectAsync(url, { protocolVersion: 4 });
  const ask = async (id: string, set: unknown) => {
    const after = watch.messages.length;
    await client.publishAsync(`${base}/config/set`, JSON.stringify({ id, set }), { qos: 1 });
    const answer = await watch.waitFor(`answer ${id}`, (m) => m.topic === `${base}/config/response` && JSON.parse(m.payload.toString()).id === id, { after });
    const response = JSON.parse(answer.payload.toString()) as { status: string; reason?: string };
    return { ok: response.status === 'ok', reason: response.reason };
  };
  const telemetryController = async () => {
    const after = watch.messages.length;
    const m = await watch.waitFor('telemetry', (msg) => msg.topic === `${base}/telemetry`, { after });
    return (JSON.parse(m.payload.toString()) as { controller?: string }).controller;
  };
  t.is(await telemetryController(), 'on');

  const refused = await ask('pin', { policy: { operatingPoint: 'full' } });
  t.false(refused.ok);
  t.regex(refused.reason ?? '', /controller is on.*"enabled":false/);

  const thresholds = await ask('hand', { policy: { policy: 'max-probability', thresholds: [0.9, 0.9, 0.9, 1] } });
  t.true(thresholds.ok);
  t.regex(thresholds.reason ?? '', /controller is suspended/);
  t.regex((await telemetryController()) ?? '', /^suspended/);
  await agent.waitForOutput(/WARN.*controller suspended|"msg":"controller suspended/);

  const back = await ask('back', { policy: { operatingPoint: 'balanced' } });
  t.true(back.ok, back.reason);
  t.is(await telemetryController(), 'on');

  const pinned = await ask('pin-off', { controller: { enabled: false }, policy: { operatingPoint: 'full' } });
  t.true(pinned.ok, pinned.reason);
  await client.endAsync();
  await agent.stop();
  const overrides = JSON.parse(fs.readFileSync(path.join(agent.dir, 'remote-config.json'), 'utf8')) as { patch: { policy: Record<string, unknown> } };
  t.deepEqual(overrides.patch.policy, { operatingPoint: 'full' }, 'the hand-set thresholds are gone from what persists');
});

test('4b: after a restart with hand-set thresholds saved, the log says the controller is suspended', async (t) => {
  const { agent, url } = embeddedAgent('restart-gw', { telemetryIntervalMs: 200 });
  await agent.waitForOutput(/frames/);
  const base = 'edge-exit/restart-gw';
  const watch = await MqttWatch.connect(url, [`${base}/config/response`], { protocolVersion: 4 });
  const client = await mqtt.connectAsync(url, { protocolVersion: 4 });
  const handSet = { policy: 'entropy', thresholds: [0.1, 0.1, 0.1, 0] };
  await client.publishAsync(`${base}/config/set`, JSON.stringify({ id: '1', set: { policy: handSet } }), { qos: 1 });
  const answer = await watch.waitFor('answer 1', (m) => m.topic === `${base}/config/response` && JSON.parse(m.payload.toString()).id === '1', { timeoutMs: 20_000 });
  const response = JSON.parse(answer.payload.toString()) as { status: string; reason?: string };
  t.is(response.status, 'ok', response.reason);
  t.regex(response.reason ?? '', /controller is suspended/);
  await agent.waitForOutput(/controller suspended/, 20_000);
  await watch.close();
  await client.endAsync();
  t.is(await agent.stop(), 0, agent.output);
  const saved = JSON.parse(fs.readFileSync(path.join(agent.dir, 'remote-config.json'), 'utf8')) as { patch: { policy: unknown } };
  t.deepEqual(saved.patch.policy, handSet, 'the hand-set thresholds are saved');

  const again = agent.restart();
  const [line] = await again.waitForOutput(/controller suspended: hand-set policy\.thresholds[^\n]*/);
  t.regex(line, /set policy\.operatingPoint/, 'the line says how to hand the choice back');
  await again.waitForOutput(/frames/);
  const telemetry = await MqttWatch.connect(url, [`${base}/telemetry`], { protocolVersion: 4 });
  t.teardown(() => telemetry.close());
  const report = await telemetry.waitFor('telemetry after the restart', (m) => m.topic === `${base}/telemetry`, { timeoutMs: 20_000 });
  t.regex((JSON.parse(report.payload.toString()) as { controller?: string }).controller ?? '', /^suspended/, 'telemetry says so too');
  t.is(await again.stop(), 0, again.output);
});

test('5: every log table stores wall-clock time; simulated time sits beside it', async (t) => {
  const before = Date.now();
  const { agent } = embeddedAgent('clock-gw', { bridge: { kind: 'simulated', clock: 'manual', capacityWh: 1000 } }, 30);
  t.is(await agent.exited, 0, agent.output);
  const after = Date.now();
  const reader = LogReader.open(agent.logFile);
  try {
    const frames = reader.queryInferences();
    const telemetry = reader.telemetry();
    t.true(frames.length >= 30 && telemetry.length > 0);
    for (const row of [...frames, ...telemetry]) {
      t.true(row.ts >= before && row.ts <= after, `ts ${row.ts} is wall-clock time`);
      t.not(row.simTs, null, 'a simulated run keeps its own clock beside it');
    }
    t.true(frames.at(-1)!.simTs! - frames[0]!.simTs! > frames.at(-1)!.ts - frames[0]!.ts, 'simulated time runs ahead of the wall clock');
  } finally {
    reader.close();
  }
});

test('6: controller reasons say each side once', (t) => {
  const points = [
    { name: 'full', policy: 'max-probability' as const, thresholds: [1, 1], maxExit: 1, validationAccuracy: 0.9, expectedMacs: 10, expectedLatencyMs: 1, exitHistogram: [0, 1] },
    { name: 'balanced', policy: 'max-probability' as const, thresholds: [0.8, 1], maxExit: 1, validationAccuracy: 0.88, expectedMacs: 6, expectedLatencyMs: 0.6, exitHistogram: [1, 1] },
  ];
  const controller = new EnergyController(points, controllerSchema.parse({}), 40);
  const decision = controller.decide({ nowS: 0, stateOfCharge: 0.36, temperatureC: 50 });
  t.regex(decision.reason, /^battery 36%, low; /);
  t.is(decision.reason.match(/battery 36%/g)!.length, 1, decision.reason);
});

test('6b: on a pipe the log is JSON lines; EDGE_EXIT_LOG_FORMAT=text makes it readable text', async (t) => {
  const json = new CliProcess(['status', '--json', '-c', '/nonexistent/edge-exit.json'], { EDGE_EXIT_LOG_LEVEL: 'debug' });
  await json.exited;
  t.regex(json.output, /"level":20,.*"msg":"command failed"/);
  const text = new CliProcess(['status', '--json', '-c', '/nonexistent/edge-exit.json'], { EDGE_EXIT_LOG_LEVEL: 'debug', EDGE_EXIT_LOG_FORMAT: 'text' });
  await text.exited;
  t.regex(text.output, /^\d\d:\d\d:\d\d debug command failed/m);
});

test('7: `edge-exit status` while the model is being built says so', async (t) => {
  const dir = temporaryDir('edge-exit-building-');
  const config = path.join(dir, 'agent.json');
  fs.writeFileSync(config, JSON.stringify({ logs: { path: path.join(dir, 'log.db') } }));
  new StatusReporter(path.join(dir, 'status.json'), 'edge-exit-1', () => 'ok').phase('building', 'building model package mobilenet_v2_cifar10');
  const status = new CliProcess(['status', '-c', config]);
  t.is(await status.exited, 0, status.output);
  t.regex(status.output, /building \(pid \d+\): building model package mobilenet_v2_cifar10/);
});

test('8: a bad environment override names the variable that set it', (t) => {
  const error = t.throws(() => loadAgentConfig(undefined, { EDGE_EXIT__CONTROLLER__MAX_TEMPERATURE_C: 'hot', EDGE_EXIT_CONFIG: undefined }));
  t.regex(error.message, /controller\.maxTemperatureC: .* — set by the environment variable EDGE_EXIT__CONTROLLER__MAX_TEMPERATURE_C/);
  const unknown = t.throws(() => loadAgentConfig(undefined, { EDGE_EXIT__MAX_FRAMERATE: '5' }));
  t.regex(unknown.message, /unknown key "maxFramerate": did you mean "maxFrameRate"\? .* — set by the environment variable EDGE_EXIT__MAX_FRAMERATE/);
});

test('8b: an unknown key in the config file or in config/set is an error naming the nearest valid key', (t) => {
  const dir = temporaryDir('edge-exit-unknown-');
  const file = path.join(dir, 'agent.json');
  fs.writeFileSync(file, JSON.stringify({ maxFramerate: 5 }));
  const error = t.throws(() => loadAgentConfig(file, {}));
  t.regex(error.message, /unknown key "maxFramerate": did you mean "maxFrameRate"\?/);
  const remote = parseConfigSet(Buffer.from(JSON.stringify({ id: 'typo', set: { maxFramerate: 5 } })));
  t.false(remote.ok);
  if (!remote.ok) {
    t.is(remote.id, 'typo');
    t.regex(remote.reason, /unknown key "maxFramerate": did you mean "maxFrameRate"\?/);
  }
});

test('9: the status file is written atomically with no fixed .tmp name, and a failed write costs a warning, not the agent', (t) => {
  const dir = temporaryDir('edge-exit-status-');
  const reporter = new StatusReporter(path.join(dir, 'status.json'), 'gw', () => 'ok');
  reporter.phase('starting', 'opening');
  t.deepEqual(fs.readdirSync(dir), ['status.json']);
  // A directory where the file should be: every write fails, as on a full disk.
  const blocked = path.join(dir, 'blocked');
  fs.mkdirSync(path.join(blocked, 'status.json'), { recursive: true });
  const failing = new StatusReporter(path.join(blocked, 'status.json'), 'gw', () => 'ok');
  t.notThrows(() => failing.phase('starting', 'opening'));
  t.deepEqual(fs.readdirSync(blocked), ['status.json'], 'no temp file is left behind');
});
