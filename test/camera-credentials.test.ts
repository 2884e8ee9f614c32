/**
 * Issue 37 (2, 3): the camera's password in source.url never leaves the agent: not in the retained
 * config/state, /api/config, the logs, the SQLite log, and not on ffmpeg's command line (/proc/<pid>/cmdline).
 * Real ffmpeg serves the camera side; the agent's own embedded broker (aedes) carries config/state.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import mqtt from 'mqtt';
import { parseAgentConfig, publicConfig, redactUrl } from '../agent/config/agent-config.js';
import { deviceTopics } from '../agent/mqtt/topics.js';
import { StreamSource } from '../agent/sources/stream-source.js';
import { AgentProcess } from './helpers/agent-process.js';
import { temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { waitFor } from './helpers/wait.js';

const FFMPEG = ['/usr/bin/ffmpeg', '/usr/local/bin/ffmpeg'].find((file) => fs.existsSync(file));
const serialWithFfmpeg = FFMPEG ? test.serial : test.skip;
const SECRET = 'XYZZY-cam-pass';
const target = { width: 32, height: 32, resize: 'stretch' as const };
const randomPort = () => 20_000 + Math.floor(Math.random() * 20_000);

/** An HTTP MPEG-TS camera: ffmpeg -listen 1 serves one client at a time, so a loop serves the next (it checks no password). */
function httpCamera(port: number): { stop(): void } {
  const dir = temporaryDir('edge-exit-cam-');
  const clip = path.join(dir, 'clip.mkv');
  execFileSync(FFMPEG!, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10', '-t', '4', '-c:v', 'ffv1', clip]);
  const camera = spawn('sh', ['-c', `while true; do ${FFMPEG} -hide_banner -loglevel error -re -stream_loop -1 -i ${clip} -c:v mpeg4 -q:v 5 -f mpegts -listen 1 http://127.0.0.1:${port}/live.ts; done`], { stdio: 'ignore', detached: true });
  return { stop: () => process.kill(-camera.pid!, 'SIGKILL') };
}

/** Command lines (NUL-separated argv) of the processes whose parent is `pid`. */
function childCommandLines(pid: number): string[] {
  return fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === pid ? [fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8')] : [];
    } catch {
      return [];
    }
  });
}

test('redactUrl hides userinfo and secret query parameters of every URL in a text, and keeps the rest', (t) => {
  t.is(redactUrl('rtsp://cam:S3cret@192.168.1.20:554/stream1'), 'rtsp://cam:***@192.168.1.20:554/stream1');
  t.is(redactUrl('mqtt://gate-3:S3cr3t@XYZZY-3@broker.local:1883'), 'mqtt://gate-3:***@broker.local:1883');
  t.is(redactUrl('http://tokenonly@cam/live'), 'http://***@cam/live');
  t.is(redactUrl('http://cam/live.ts?user=a&Password=x1&PWD=x2&pass=x3&token=x4&api_key=x5&auth=x6&fps=5'), 'http://cam/live.ts?user=a&Password=***&PWD=***&pass=***&token=***&api_key=***&auth=***&fps=5');
  t.is(redactUrl("[concat @ 0x1] Impossible to open 'rtsp://cam:S3cret@h/s?token=T0k' and http://u:p@x/y"), "[concat @ 0x1] Impossible to open 'rtsp://cam:***@h/s?token=***' and http://u:***@x/y");
  t.is(redactUrl('rtsp://cam.local/stream'), 'rtsp://cam.local/stream');
  t.is(redactUrl('/dev/video0'), '/dev/video0');
});

test('publicConfig (config/state, /api/config) hides a stream source URL’s credentials', (t) => {
  const config = parseAgentConfig({ source: { kind: 'stream', url: `rtsp://cam:${SECRET}@10.0.0.5/live?token=${SECRET}` } });
  const shown = JSON.stringify(publicConfig(config));
  t.false(shown.includes(SECRET), shown);
  t.true(shown.includes('rtsp://cam:***@10.0.0.5/live?token=***'), shown);
  t.is((config.source as { url: string }).url, `rtsp://cam:${SECRET}@10.0.0.5/live?token=${SECRET}`, 'the agent itself still has it');
});

serialWithFfmpeg('an RTSP camera gets the password from ffmpeg, but ffmpeg\'s command line never holds it, nor does the failure shown', async (t) => {
  // A camera that asks for basic auth and refuses it: what matters is what ffmpeg sent, and its argv.
  const requests: string[] = [];
  const server = net.createServer((socket) =>
    socket.on('data', (data) => {
      const request = data.toString();
      requests.push(request);
      const cseq = /CSeq: (\d+)/.exec(request)?.[1] ?? '1';
      socket.write(`RTSP/1.0 401 Unauthorized\r\nCSeq: ${cseq}\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n`);
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const source = new StreamSource({ url: `rtsp://cam:${SECRET}@127.0.0.1:${port}/live`, target, loop: false, realtime: false, stallTimeoutMs: 10_000, restartBackoff: { minMs: 60_000, maxMs: 60_000 } });
  t.teardown(() => source.close());
  const expected = `Authorization: Basic ${Buffer.from(`cam:${SECRET}`).toString('base64')}`;
  let commandLines: string[] = [];
  await waitFor('ffmpeg sends the credentials', () => {
    commandLines = [...commandLines, ...childCommandLines(process.pid).filter((line) => line.startsWith('ffmpeg') || line.includes('ffmpeg\0'))];
    return requests.some((request) => request.includes(expected));
  }, 20_000);
  t.true(commandLines.length > 0, 'ffmpeg was seen running');
  for (const line of commandLines) t.false(line.includes(SECRET), line.replaceAll('\0', ' '));
  await waitFor('the failure is known', () => source.failure !== undefined, 20_000);
  t.regex(source.failure!, /refused the credentials/);
  t.false(source.failure!.includes(SECRET), source.failure);
  t.false(source.name.includes(SECRET));
});

serialWithFfmpeg('an agent on an HTTP camera with a password: frames flow, and the password is in no topic, API answer, output, file or child command line', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const port = randomPort();
  const camera = httpCamera(port);
  t.teardown(() => camera.stop());
  const brokerPort = randomPort();
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    {
      deviceId: 'cam-gw',
      source: { kind: 'stream', url: `http://cam:${SECRET}@127.0.0.1:${port}/live.ts?token=${SECRET}-t&fps=5`, stallTimeoutS: 10 },
      gate: { mode: 'off' },
      maxFrameRate: 5,
      mqtt: { embeddedPort: brokerPort },
    },
  );
  t.teardown(() => agent.kill());
  const webPort = (await agent.waitForOutput(/dashboard on http:\/\/[^:]+:(\d+)\//))[1]!;
  await waitFor('frames from the camera', () => agent.inferences().length >= 3, 60_000);
  const cmdlines = childCommandLines(agent.pid);
  t.true(cmdlines.some((line) => line.startsWith('ffmpeg') || line.includes('ffmpeg\0')), 'the agent runs ffmpeg');
  for (const line of cmdlines) t.false(line.includes(SECRET), line.replaceAll('\0', ' '));

  const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, { reconnectPeriod: 0 });
  t.teardown(() => watcher.end(true));
  const seen: Array<{ topic: string; payload: string }> = [];
  watcher.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  await watcher.subscribeAsync('#');
  const configState = deviceTopics('cam-gw').configState;
  await waitFor('the retained config/state', () => seen.some((m) => m.topic === configState), 10_000);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const state = seen.find((m) => m.topic === configState)!.payload;
  t.true(state.includes(`http://cam:***@127.0.0.1:${port}/live.ts?token=***&fps=5`), state);
  for (const message of seen) t.false(message.payload.includes(SECRET), `${message.topic}: ${message.payload}`);

  // (api/live is an event stream that never ends: the live view's name comes from the same redacted source name.)
  for (const route of ['api/config', 'metrics', 'health']) {
    const body = await (await fetch(`http://127.0.0.1:${webPort}/${route}`)).text();
    t.false(body.includes(SECRET), `/${route}: ${body.slice(0, 2000)}`);
  }
  t.is(await agent.stop(), 0, agent.output);
  t.true(agent.inferences().length >= 3);
  t.false(agent.output.includes(SECRET), agent.output);
  // Every file the agent wrote (SQLite log and WAL, outbox, status), except the operator's own config file.
  for (const file of fs.readdirSync(agent.dir)) {
    if (file === 'agent.json') continue;
    t.false(fs.readFileSync(path.join(agent.dir, file)).includes(SECRET), `no password in ${file}`);
  }
});
