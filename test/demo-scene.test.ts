import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { createFrameSource } from '../agent/sources/create-source.js';
import { DEMO_SECONDS, ensureDemoVideo } from '../agent/sources/demo-scene.js';
import { ReplaySource } from '../agent/sources/replay-source.js';
import { StreamSource } from '../agent/sources/stream-source.js';
import { readStatusFile } from '../agent/pipeline/status-file.js';
import { LogReader } from '../agent/store/log-store.js';
import { AgentProcess } from './helpers/agent-process.js';
import { SHARED, temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';
import { captureWarnings } from './helpers/warnings.js';

/* The default run's demo camera: a video made once from ../shared with the real ffmpeg, or the replay when there is no ffmpeg. */

const FFMPEG = fs.existsSync('/usr/bin/ffmpeg');
const target = { width: 96, height: 96, resize: 'stretch' as const };

test('the default run watches the demo camera', (t) => {
  t.deepEqual(parseAgentConfig({}).source, { kind: 'demo', dir: 'data/demo' });
});

(FFMPEG ? test.serial : test.skip)('the demo video is made once from ../shared, whole, and streamed by ffmpeg in a loop', async (t) => {
  const dir = temporaryDir('edge-exit-demo-');
  const video = await ensureDemoVideo(dir, SHARED);
  const probe = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', video], { encoding: 'utf8' });
  t.true(Math.abs(Number(probe) - DEMO_SECONDS) < 1, `${probe} s`);
  t.deepEqual(fs.readdirSync(dir), ['demo-scene.mp4'], 'no partial file left');
  const made = fs.statSync(video).mtimeMs;
  t.is(await ensureDemoVideo(dir, SHARED), video);
  t.is(fs.statSync(video).mtimeMs, made, 'made once, then reused');
  const source = await createFrameSource({ kind: 'demo', dir }, target, path.dirname(dir));
  t.teardown(() => source.close());
  t.true(source instanceof StreamSource);
  const frame = await source.next();
  t.is(frame!.pixels!.length, 96 * 96 * 3);
});

test.serial('without ffmpeg, the demo camera says what to install and the run replays CIFAR-10 instead, which it does not gate', async (t) => {
  const warnings = captureWarnings(t);
  const path0 = process.env.PATH;
  const noFfmpeg = temporaryDir('edge-exit-no-ffmpeg-');
  process.env.PATH = noFfmpeg;
  t.teardown(() => (process.env.PATH = path0));
  const source = await createFrameSource({ kind: 'demo', dir: temporaryDir('edge-exit-demo-') }, target);
  t.teardown(() => source.close());
  t.true(source instanceof ReplaySource);
  t.false(source.continuousScene, 'a replay of unrelated images says it has no scene');
  t.regex(warnings.join('\n'), /the demo camera needs ffmpeg \(apt-get install ffmpeg\); replaying the CIFAR-10 test split instead/);
  process.env.PATH = path0;

  // The real `edge-exit run` of the default demo without ffmpeg: every image its own, none let stand, no event.
  const agent = AgentProcess.start(
    await buildTinyAgentPackage(),
    // Any label starts an event (were events on), and frames come fast enough for one to last minDurationS.
    { source: { kind: 'demo', dir: temporaryDir('edge-exit-demo-') }, maxFrameRate: 40, statusIntervalMs: 200, events: { minConfidence: 0, minDurationS: 0.5 } },
    { frames: 80, env: { PATH: noFfmpeg } },
  );
  t.teardown(() => agent.kill());
  t.is(await agent.exited, 0, agent.output);
  t.regex(agent.output, /replaying the CIFAR-10 test split instead/);
  const status = readStatusFile(path.join(agent.dir, 'status.json'))!;
  t.is(status.frames, 80);
  t.is(status.gated, 0, `no frame of the replay let an earlier image's label stand:\n${agent.output}`);
  t.is(agent.inferences().length, 80, 'every frame classified');
  const reader = LogReader.open(agent.logFile);
  t.teardown(() => reader.close());
  t.deepEqual(reader.events(), [], 'no events: a replay has no scene for one to happen in');
});
