import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { eventMessageSchema, stateSchema } from '../agent/mqtt/payloads.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { AgentProcess } from './helpers/agent-process.js';
import { mosquittoTest, startMosquitto } from './helpers/brokers.js';
import { CliProcess } from './helpers/cli-process.js';
import { MqttWatch } from './helpers/mqtt-watch.js';
import { horseSceneVideo } from './helpers/scene-video.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { freePort } from '../tools/mqtt/mosquitto.js';

/*
 * Results leaving the device, end to end: `edge-exit run` on a video of a still scene
 * that a horse walks into and out of, through a real Mosquitto. The state is retained,
 * the event comes as new … end with one id, the snapshot is a JPEG, and `edge-exit logs
 * events` lists it.
 */

const withTools = fs.existsSync('/usr/bin/ffmpeg') ? mosquittoTest('mosquitto_sub') : test.skip;

/** 8 s: the cat photo, with a CIFAR-10 horse pasted in from 1.5 s to 3.5 s. */
const sceneVideo = () => horseSceneVideo(8, 1.5, 3.5);

withTools('a horse walks through a still scene: state retained, one event new → end with one id, a JPEG snapshot, all read back with mosquitto_sub and `logs events`', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const topics = deviceTopics('scene-gw');
  const watch = await MqttWatch.connect(broker.url, [topics.events, topics.state, topics.snapshot]);
  t.teardown(() => watch.close());

  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    {
      deviceId: 'scene-gw',
      mqtt: { url: broker.url },
      source: { kind: 'stream', url: sceneVideo(), loop: false, realtime: true },
      // The tiny test model is seldom sure of itself: any confidence may start an event here.
      // The horse comes in and stands: the event goes on until endAfterS after it has left.
      events: { minConfidence: 0, endAfterS: 2, minDurationS: 0.5 },
      gate: { maxReuseS: 30 },
      maxFrameRate: 10,
      controller: { enabled: false },
    },
  );
  t.teardown(() => agent.kill());
  // The file ends, so does the run.
  t.is(await agent.exited, 0, agent.output);

  const events = watch.on(topics.events).map((m) => eventMessageSchema.parse(JSON.parse(m.payload.toString())));
  t.deepEqual(events.map((e) => e.type).filter((type) => type !== 'update'), ['new', 'end'], JSON.stringify(events));
  t.is(new Set(events.map((e) => e.after.id)).size, 1, 'one id throughout');
  const [first, last] = [events[0]!, events.at(-1)!];
  t.is(first.before, null);
  t.deepEqual(last.before?.id, first.after.id);
  // The horse is there from 1.5 s to 3.5 s of an 8 s file played at its own rate; the event ends at the
  // last motion, when the background has forgotten it (a running average, a few frames after it left).
  const firstFrameAt = agent.inferences()[0]!.ts;
  const startedAfter = (last.after.start - firstFrameAt) / 1000;
  const seconds = (last.after.end! - last.after.start) / 1000;
  t.true(startedAfter > 1.2 && startedAfter < 2.5, `the event started ${startedAfter} s into the video`);
  t.true(seconds > 1.5 && seconds < 5, `the event lasted ${seconds} s`);
  t.true(last.after.frames >= 2);

  // Read back as an operator would, with mosquitto_sub: the retained state and snapshot are there after the agent left.
  const host = new URL(broker.url);
  const sub = (topic: string) => execFileSync('mosquitto_sub', ['-h', host.hostname, '-p', host.port, '-t', topic, '-C', '1', '-W', '5', '-N']);
  const state = stateSchema.parse(JSON.parse(sub(topics.state).toString()));
  t.is(state.decidedBy, 'device');
  t.true(state.since <= state.at);
  const snapshot = sub(topics.snapshot);
  const meta = await sharp(snapshot).metadata();
  t.is(meta.format, 'jpeg');
  t.is(meta.width, 96);

  // The log has the event, with the same snapshot.
  const out = temporaryDir('edge-exit-snapshots-');
  const logs = new CliProcess(['logs', 'events', '--db', agent.logFile, '--snapshots', out]);
  t.is(await logs.exited, 0, logs.output);
  t.regex(logs.output, new RegExp(`${last.after.label}\\s+\\d\\.\\d+\\s+${last.after.frames}\\s`));
  t.regex(logs.output, /1 snapshot\(s\) written/);
  t.deepEqual(fs.readFileSync(path.join(out, `${last.after.id}.jpg`)), snapshot);
});

withTools('`edge-exit run` on an RTSP camera on loopback (it pushes to the gateway, which listens): events and state on MQTT, read back with mosquitto_sub', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const topics = deviceTopics('rtsp-gw');
  const watch = await MqttWatch.connect(broker.url, [topics.events]);
  t.teardown(() => watch.close());
  const port = await freePort();
  const url = `rtsp://127.0.0.1:${port}/live`;
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    {
      deviceId: 'rtsp-gw',
      mqtt: { url: broker.url },
      source: { kind: 'stream', url, listen: true },
      events: { minConfidence: 0, endAfterS: 2, minDurationS: 0.5 },
      gate: { maxReuseS: 30 },
      maxFrameRate: 10,
      controller: { enabled: false },
    },
  );
  t.teardown(() => agent.kill());
  await agent.waitForOutput(/mqtt: connected/);
  // The camera: a second ffmpeg pushing the scene over RTSP (TCP) at its own rate, again and again.
  const camera = spawn('sh', ['-c', `while true; do ffmpeg -hide_banner -loglevel error -re -i ${sceneVideo()} -c:v mpeg4 -q:v 4 -f rtsp -rtsp_transport tcp ${url}; sleep 0.2; done`], { stdio: 'ignore', detached: true });
  t.teardown(() => process.kill(-camera.pid!, 'SIGKILL'));
  const end = await watch.waitFor('an event that ends', (m) => JSON.parse(m.payload.toString()).type === 'end', { timeoutMs: 60_000 });
  const ended = eventMessageSchema.parse(JSON.parse(end.payload.toString()));
  t.is(watch.on(topics.events).map((m) => eventMessageSchema.parse(JSON.parse(m.payload.toString()))).find((e) => e.type === 'new')?.after.id, ended.after.id);
  const host = new URL(broker.url);
  const state = stateSchema.parse(JSON.parse(execFileSync('mosquitto_sub', ['-h', host.hostname, '-p', host.port, '-t', topics.state, '-C', '1', '-W', '5']).toString()));
  t.is(state.decidedBy, 'device');
  t.is(await agent.stop(), 0, agent.output);
  t.true(agent.inferences().every((row) => row.source === `stream ${url}`));
});
