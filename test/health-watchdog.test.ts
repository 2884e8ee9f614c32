import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import mqtt from 'mqtt';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { AgentProcess } from './helpers/agent-process.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage, TINY_INPUT } from './helpers/tiny-package.js';

/*
 * The watchdog, with the faults at the OS boundary: a fake ffmpeg first on PATH stands for
 * a camera that sends a few seconds of frames and then nothing (without dying, so nothing
 * restarts it), and a fake systemd-notify records what the agent tells systemd.
 */

const FRAME_BYTES = TINY_INPUT * TINY_INPUT * 3;

function fakePrograms(notifyLog: string): string {
  const bin = temporaryDir('edge-exit-fake-bin-');
  // 30 frames at 10 a second, then the camera hangs.
  fs.writeFileSync(path.join(bin, 'ffmpeg'), `#!/bin/sh\nfor i in $(seq 30); do head -c ${FRAME_BYTES} /dev/urandom; sleep 0.1; done\nexec sleep 600\n`, { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> ${notifyLog}\n`, { mode: 0o755 });
  return `${bin}:${process.env.PATH}`;
}

const lines = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : []);

test('a stalled loop turns the health check unhealthy (/healthz 503, the MQTT health answer) and stops feeding the systemd watchdog', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const notifyLog = path.join(temporaryDir('edge-exit-notify-'), 'notify.log');
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    {
      deviceId: 'stall-gw',
      source: { kind: 'stream', url: 'rtsp://127.0.0.1:8554/porch', stallTimeoutS: 600 },
      gate: { mode: 'off' },
      health: { stalledAfterS: 2 },
      maxFrameRate: 20,
      mqtt: { embeddedPort: port },
    },
    { env: { PATH: fakePrograms(notifyLog), NOTIFY_SOCKET: '/run/systemd/notify-test', WATCHDOG_USEC: '400000' } },
  );
  t.teardown(() => agent.kill());
  const webPort = (await agent.waitForOutput(/metrics on http:\/\/[^:]+:(\d+)\/metrics/))[1]!;
  const healthz = async () => {
    const response = await fetch(`http://127.0.0.1:${webPort}/healthz`);
    return { code: response.status, body: (await response.json()) as { status: string; checks: Record<string, string> } };
  };
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
  t.teardown(() => client.endAsync());
  const topics = deviceTopics('stall-gw');
  const answers: Array<{ id?: string; status: string; checks: Record<string, string> }> = [];
  client.on('message', (_topic, payload) => answers.push(JSON.parse(payload.toString())));
  await client.subscribeAsync(topics.healthResponse, { qos: 1 });
  const askHealth = async (id: string) => {
    await client.publishAsync(topics.healthRequest, JSON.stringify({ id }), { qos: 1 });
    for (let i = 0; i < 50 && !answers.some((a) => a.id === id); i++) await sleep(100);
    return answers.find((a) => a.id === id);
  };

  // Without a token the port answers only to localhost names: a page whose own name was rebound to 127.0.0.1 is refused.
  const rebound = await new Promise<number>((resolve, reject) =>
    http.get({ host: '127.0.0.1', port: Number(webPort), path: '/api/config', headers: { host: `rebound.example:${webPort}` } }, (response) => {
      response.resume();
      resolve(response.statusCode!);
    }).on('error', reject),
  );
  t.is(rebound, 403);

  // While frames flow: healthy, ready said, the watchdog fed.
  await agent.waitForOutput(/\d+ frames\s+[\d.]+ fps/);
  const flowing = await healthz();
  t.is(flowing.code, 200);
  t.is(flowing.body.status, 'ok');
  t.like(await askHealth('while-flowing'), { id: 'while-flowing', status: 'ok', checks: { source: 'ok', store: 'ok', mqtt: 'ok' } });
  await sleep(1000);
  const said = lines(notifyLog);
  t.true(said.some((line) => line.includes('READY=1')), said.join('\n'));
  t.true(said.filter((line) => line.includes('WATCHDOG=1')).length >= 2, said.join('\n'));
  t.true(said.every((line) => line.startsWith('/run/systemd/notify-test ') && line.includes(`--pid=${agent.pid}`)), 'on the socket systemd gave, naming the agent');

  // The camera hangs after 3 s of frames; 2 s later the agent calls itself stalled.
  let stalled = await healthz();
  for (let i = 0; i < 100 && stalled.code !== 503; i++) {
    await sleep(200);
    stalled = await healthz();
  }
  t.is(stalled.code, 503, JSON.stringify(stalled.body));
  t.is(stalled.body.status, 'stalled');
  t.regex(stalled.body.checks.source!, /^stalled: no frame for \d+ s/);
  t.like(await askHealth('while-stalled'), { id: 'while-stalled', status: 'stalled' });
  const fedBefore = lines(notifyLog).filter((line) => line.includes('WATCHDOG=1')).length;
  await sleep(1500);
  const after = lines(notifyLog);
  t.is(after.filter((line) => line.includes('WATCHDOG=1')).length, fedBefore, 'no ping while stalled: systemd restarts the service');
  t.true(after.some((line) => line.includes('STATUS=stalled')), after.join('\n'));
  t.is(await agent.stop(), 0, agent.output);
  t.true(lines(notifyLog).some((line) => line.includes('STOPPING=1')));
});
