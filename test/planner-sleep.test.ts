import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import mqtt from 'mqtt';
import { operatingLadder } from '../agent/controller/operating-ladder.js';
import { decodeOffload, encodeOffloadAnswer } from '../agent/mqtt/offload-codec.js';
import { Outbox } from '../agent/mqtt/outbox.js';
import { LogReader } from '../agent/store/log-store.js';
import { freePort } from '../tools/mqtt/mosquitto.js';
import { AgentProcess } from './helpers/agent-process.js';
import { startAedes } from './helpers/brokers.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * The lifetime planner taking the board down, end to end through `edge-exit run`: the
 * simulator's power cycles, and a real halt through a fake RTC in a sysfs tree and a fake
 * `systemctl` first on PATH. A still video keeps the motion gate quiet, so the plan's sleep
 * comes due.
 */

const FFMPEG = ['/usr/bin/ffmpeg', '/usr/local/bin/ffmpeg'].find((file) => fs.existsSync(file));
const ffmpegTest = FFMPEG ? test.serial : test.skip;

function stillVideo(): string {
  const video = path.join(temporaryDir('edge-exit-still-'), 'still.mkv');
  execFileSync(FFMPEG!, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'color=c=gray:size=160x120:rate=10', '-t', '2', '-c:v', 'ffv1', video]);
  return video;
}

/** An aedes broker and one client of the test's on it, both closed after the test. */
async function brokerWithClient(t: ExecutionContext, clientId: string) {
  const broker = await startAedes();
  t.teardown(() => broker.close());
  const client = await mqtt.connectAsync(broker.url, { clientId });
  t.teardown(() => client.endAsync());
  return { broker, client };
}

/** A simulated board on the manual clock watching a still scene, its results on the given broker. */
function stillSceneOn(brokerUrl: string) {
  return {
    source: { kind: 'stream', url: stillVideo(), loop: true },
    gate: { mode: 'on', maxReuseS: 3600 },
    mqtt: { url: brokerUrl, protocolVersion: 4 },
    bridge: { kind: 'simulated', clock: 'manual', capacityWh: 1000 },
  };
}

/** A planner that cannot meet its target, so it lasts as long as it can: asleep whenever nothing moves. */
const SLEEPY_PLANNER = { enabled: true, sleep: true, target: { kind: 'hours', hours: 10_000 }, minEventRecall: 0, lingerS: 5, maxSleepS: 600, replanEveryS: 60 };

ffmpegTest('the simulated board wakes on motion, and sleeps again only once the event it saw has ended and its snapshot is written', async (t) => {
  const agentPackage = await buildTinyAgentPackage();
  const START_AT = 1_700_000_000_000;
  const agent = AgentProcess.start(agentPackage, {
    source: { kind: 'stream', url: stillVideo(), loop: true },
    gate: { mode: 'on', maxReuseS: 3600 },
    // The tiny model is sure enough of a gray frame (about 80%) for it to start an event; the PIR fires at 300 s (the wake) and
    // three times after the 30 s boot, so the event has frames enough to be announced.
    // It ends 15 s after the last motion, well after the planner's 5 s linger: the sleep must wait for it.
    events: { minConfidence: 0.5, minDurationS: 0, endAfterS: 15 },
    bridge: { kind: 'simulated', clock: 'manual', capacityWh: 1000, startAt: START_AT, motionAtS: [300, 335, 337, 339] },
    planner: { ...SLEEPY_PLANNER, wakeOnMotion: true, minEventRecall: 0.9 },
  });
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/slept \d+ s, woken by motion[\s\S]*sleep postponed: an event is going on[\s\S]*slept \d+ s/);
  t.is(await agent.stop(), 0, agent.output);
  const afterWake = agent.output.slice(agent.output.indexOf('woken by motion'));
  const said = afterWake.split('\n').filter((line) => /slept|postponed|event/.test(line)).slice(0, 6).join('\n');
  t.true(afterWake.indexOf('an event is going on') < afterWake.search(/slept \d+ s/), `the event held the sleep off:\n${said}`);
  const times = agent.inferences().map((row) => (row.simTs! - START_AT) / 1000);
  t.true(times.some((s) => s >= 300 && s < 300 + 40), `frames at ${times.map((s) => s.toFixed(0)).join(', ')} s: one after the wake at 300 s (the boot takes 30 s)`);
  const reader = LogReader.open(agent.logFile);
  const events = reader.events();
  reader.close();
  t.true(events.some((e) => e.end !== null && e.snapshot !== null), `the event is logged, ended, with its snapshot: ${JSON.stringify(events)}`);
  const status = JSON.parse(fs.readFileSync(path.join(agent.dir, 'status.json'), 'utf8')) as { wokeBy?: string; plan?: string };
  t.regex(status.plan ?? '', /asleep until motion/);
});

ffmpegTest('a real board arms its RTC, stops every part, halts, and loses nothing: log, outbox and remote config are all there on the next boot', async (t) => {
  const agentPackage = await buildTinyAgentPackage();
  const sysfs = temporaryDir('edge-exit-sysfs-');
  fs.mkdirSync(path.join(sysfs, 'class/rtc/rtc0'), { recursive: true });
  const alarm = path.join(sysfs, 'class/rtc/rtc0/wakealarm');
  fs.writeFileSync(alarm, '');
  // A fake systemctl first on PATH: it records how it was called, as poweroff would be.
  const bin = temporaryDir('edge-exit-fake-systemctl-');
  const calls = path.join(bin, 'calls.log');
  fs.writeFileSync(path.join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> ${calls}\n`, { mode: 0o755 });
  const config = {
    source: { kind: 'stream', url: stillVideo(), loop: true },
    gate: { mode: 'on', maxReuseS: 3600 },
    offload: { queueExpiryMs: 86_400_000 },
    // Nobody listens there: the offloads queued on an earlier boot wait in the outbox, and no answer can come to hold the sleep.
    mqtt: { url: `mqtt://127.0.0.1:${await freePort()}`, protocolVersion: 4 },
    bridge: { kind: 'sysfs', root: sysfs, rtc: 'rtc0' },
    deviceProfile: 'pi5',
    planner: SLEEPY_PLANNER,
  };
  const env = { PATH: `${bin}:${process.env.PATH}` };
  const overrides = JSON.stringify({ version: 1, patch: { telemetryIntervalMs: 7000 } });
  // What an earlier boot left: an offload waiting for its answer, and a change an operator made over MQTT.
  const beforeStart = (dir: string) => {
    const outbox = new Outbox(path.join(dir, 'outbox.db'));
    outbox.add({ requestId: 'queued-before-the-sleep', frame: Buffer.from('an offload frame'), queuedAt: Date.now() });
    outbox.close();
    fs.writeFileSync(path.join(dir, 'remote-config.json'), overrides);
  };
  const first = AgentProcess.start(agentPackage, config, { env, beforeStart });
  t.teardown(() => first.kill());
  t.is(await first.exited, 0, first.output);
  t.regex(first.output, /with 1 change\(s\) made over MQTT/);
  t.regex(first.output, /halting for the planned sleep: systemctl poweroff/);
  t.deepEqual(fs.readFileSync(calls, 'utf8').trim().split('\n'), ['poweroff']);
  t.regex(fs.readFileSync(alarm, 'utf8'), /^\+\d+$/, 'the wake alarm is armed, relative to now');
  const frames = Number(/stopped: (\d+) frames/.exec(first.output)?.[1]);
  t.true(frames >= 1, first.output);
  t.is(first.inferences().length, frames, 'every frame classified before the halt is in the log');
  t.deepEqual(first.outboxRequestIds(), ['queued-before-the-sleep'], 'the outbox survives the halt');
  t.is(fs.readFileSync(path.join(first.dir, 'remote-config.json'), 'utf8'), overrides, 'and so do the remote changes');

  const targetFile = path.join(first.dir, 'planner-target.json');
  const targetSet = fs.readFileSync(targetFile, 'utf8');
  const second = first.restart();
  t.teardown(() => second.kill());
  await second.waitForOutput(/with 1 change\(s\) made over MQTT/);
  await second.waitForOutput(/planner: plan/);
  t.is(fs.readFileSync(targetFile, 'utf8'), targetSet, 'the 10,000 h target still counts from the first boot');
  t.deepEqual(second.outboxRequestIds(), ['queued-before-the-sleep']);
  await second.exited;
  t.true(second.inferences().length > frames, 'the next boot logs on after the frames of the first');
});

ffmpegTest('an offload answer that can still arrive holds the sleep off; the board sleeps once it is in, and the answer is logged', async (t) => {
  const agentPackage = await buildTinyAgentPackage();
  // The test is the offload server: up, and answering only when it is told to.
  const { broker, client: server } = await brokerWithClient(t, 'slow-offload-server');
  await server.publishAsync('edge-exit/servers/slow-1/availability', 'online', { qos: 1, retain: true });
  const held: Array<{ topic: string; requestId: string; modelHash: string }> = [];
  server.on('message', (topic, payload) => {
    const decoded = decodeOffload(payload);
    if (decoded.ok) held.push({ topic, requestId: decoded.payload.requestId, modelHash: decoded.payload.modelHashPrefix });
  });
  await server.subscribeAsync('edge-exit/+/offload/request', { qos: 1 });
  // A target out of reach makes the planner run the package's cheapest point; capped at the first exit, every frame there is offloaded.
  const cheapest = operatingLadder(agentPackage.pkg.manifest.operatingPoints, 5).at(-1)!.name;
  const agent = AgentProcess.start(agentPackage, {
    ...stillSceneOn(broker.url),
    policy: { operatingPoint: cheapest, maxExit: 0 },
    // Every unsure answer goes to the server, and it may take a minute to come.
    offload: { minConfidence: 0.99, queueExpiryMs: 60_000 },
    planner: SLEEPY_PLANNER,
  });
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/planner: plan \S+/);
  t.regex(agent.output, new RegExp(`planner: plan ${cheapest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `), 'the planner runs the cheapest point, the one capped here');
  await agent.waitForOutput(/sleep postponed: \d+ offload answers? pending/);
  t.notRegex(agent.output, /slept \d+ s/, 'no sleep while an answer can arrive');
  t.true(held.length >= 1, 'the server has the request');
  for (const request of held.splice(0)) {
    const answerTopic = request.topic.replace(/\/offload\/request$/, `/offload/response/${request.requestId}`);
    await server.publishAsync(answerTopic, encodeOffloadAnswer({ requestId: request.requestId, label: 'ship', confidence: 0.97, serverMs: 4, modelHash: request.modelHash }), { qos: 1 });
  }
  await agent.waitForOutput(/slept \d+ s/);
  t.is(await agent.stop(), 0, agent.output);
  const answered = agent.inferences().filter((row) => row.serverLabel === 'ship');
  t.true(answered.length >= 1, 'the answer that held the sleep off is in the log');
  const afterAnswer = agent.output.slice(agent.output.search(/sleep postponed: \d+ offload answers? pending/));
  t.regex(afterAnswer, /slept \d+ s/);
});

ffmpegTest('config changes still waiting hold the sleep off; every one is applied and answered before the board sleeps', async (t) => {
  const agentPackage = await buildTinyAgentPackage();
  const { broker, client: operator } = await brokerWithClient(t, 'operator');
  const responses: Array<{ id: string; status: string }> = [];
  operator.on('message', (_topic, payload) => responses.push(JSON.parse(payload.toString()) as { id: string; status: string }));
  await operator.subscribeAsync('edge-exit/test-gw/config/response', { qos: 1 });
  const agent = AgentProcess.start(agentPackage, {
    ...stillSceneOn(broker.url),
    // Awake until the operator allows sleep over MQTT.
    planner: { ...SLEEPY_PLANNER, sleep: false },
  });
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/mqtt: connected to/);
  await agent.waitForOutput(/planner: plan/);
  t.notRegex(agent.output, /slept \d+ s/);
  // The first change makes the sleep due at once; the rest are still being applied when it comes due.
  const CHANGES = 300;
  const publishes = [operator.publishAsync('edge-exit/test-gw/config/set', JSON.stringify({ id: 'allow-sleep', set: { planner: { sleep: true } } }), { qos: 1 })];
  for (let i = 1; i < CHANGES; i++) {
    publishes.push(operator.publishAsync('edge-exit/test-gw/config/set', JSON.stringify({ id: `change-${i}`, set: { telemetryIntervalMs: 10_000 + i } }), { qos: 1 }));
  }
  await Promise.all(publishes);
  await agent.waitForOutput(/sleep postponed: \d+ config changes? pending[\s\S]*slept \d+ s/);
  const postponedAt = agent.output.search(/sleep postponed: \d+ config changes? pending/);
  t.true(postponedAt < agent.output.search(/slept \d+ s/), 'postponed first');
  t.is(await agent.stop(), 0, agent.output);
  t.is(responses.length, CHANGES, 'every change answered');
  t.true(responses.every((r) => r.status === 'ok'), JSON.stringify(responses.filter((r) => r.status !== 'ok').slice(0, 3)));
  const saved = JSON.parse(fs.readFileSync(path.join(agent.dir, 'remote-config.json'), 'utf8')) as { patch: { telemetryIntervalMs?: number; planner?: { sleep?: boolean } } };
  t.is(saved.patch.telemetryIntervalMs, 10_000 + CHANGES - 1, 'the last change is the one kept across the sleep');
  t.true(saved.patch.planner?.sleep);
});
