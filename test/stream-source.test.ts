import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { SourceError } from '../agent/sources/child-stream.js';
import { StreamSource, ffmpegArguments } from '../agent/sources/stream-source.js';
import type { RgbTarget } from '../agent/preprocess/image-to-rgb.js';
import { AgentProcess } from './helpers/agent-process.js';
import { temporaryDir } from './helpers/shared.js';
import { captureWarnings } from './helpers/warnings.js';
import { waitFor } from './helpers/wait.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/*
 * The ffmpeg source against Debian's real ffmpeg on real video files made here, and
 * against fake ffmpeg programs first on PATH for what a gateway's cameras do wrong
 * (refused credentials, a stream that stalls).
 */

const FFMPEG = ['/usr/bin/ffmpeg', '/usr/local/bin/ffmpeg'].find((file) => fs.existsSync(file));
const withFfmpeg = FFMPEG ? test : test.skip;
/** Agents in this file run one at a time: each starts the embedded broker on its port. */
const agentWithFfmpeg = FFMPEG ? test.serial : test.skip;
const TARGET: RgbTarget = { width: 32, height: 24, resize: 'stretch' };

/** A short lossless video from one of ffmpeg's test sources, e.g. `color=c=red`. */
function makeVideo(lavfi: string, seconds: number, rate: number): string {
  const file = path.join(temporaryDir('edge-exit-video-'), 'clip.mkv');
  execFileSync(FFMPEG!, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `${lavfi}${lavfi.includes('=') ? ':' : '='}size=160x120:rate=${rate}`, '-t', String(seconds), '-c:v', 'ffv1', file]);
  return file;
}

/** A fake `ffmpeg` first on PATH: a shell script standing in for a camera that misbehaves. */
function fakeFfmpeg(script: string): NodeJS.ProcessEnv {
  const bin = temporaryDir('edge-exit-fake-ffmpeg-');
  fs.writeFileSync(path.join(bin, 'ffmpeg'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return { ...process.env, PATH: `${bin}:/usr/bin:/bin` };
}

/** One frame of raw RGB for TARGET on stdout, as the real ffmpeg writes it. */
const ONE_FRAME = `head -c ${TARGET.width * TARGET.height * 3} /dev/zero`;

withFfmpeg('a video file is decoded and scaled by ffmpeg to the model input as raw RGB, every frame, then the source ends', async (t) => {
  const file = makeVideo('color=c=red', 2, 10);
  const source = new StreamSource({ url: file, target: TARGET, loop: false, realtime: false, stallTimeoutMs: 10_000 });
  t.teardown(() => source.close());
  const frames = [];
  for (let frame = await source.next(); frame; frame = await source.next()) frames.push(frame);
  // As fast as it decodes, a consumer this quick may still miss a few: missed ones are counted, not queued.
  t.is(frames.length + source.stats.dropped, 20);
  t.is(source.stats.frames, 20);
  for (const frame of frames) {
    t.is(frame.pixels!.length, TARGET.width * TARGET.height * 3);
    t.is(frame.bytes.length, 0, 'no encoded copy of the frame was made');
  }
  // Pure red after YUV and back: about (254, 0, 0) in every pixel.
  const pixels = frames[0]!.pixels!;
  for (let i = 0; i < pixels.length; i += 3) {
    if (pixels[i]! < 240 || pixels[i + 1]! > 15 || pixels[i + 2]! > 15) {
      t.fail(`pixel ${i / 3} is ${pixels.subarray(i, i + 3).join(',')}`);
      break;
    }
  }
});

withFfmpeg('paced at the file\'s rate, a slow consumer gets the latest frame and the stale ones are dropped and counted', async (t) => {
  const file = makeVideo('testsrc', 3, 25);
  const source = new StreamSource({ url: file, target: TARGET, loop: false, realtime: true, stallTimeoutMs: 10_000 });
  t.teardown(() => source.close());
  const started = Date.now();
  const ids: number[] = [];
  for (let frame = await source.next(); frame; frame = await source.next()) {
    ids.push(Number(frame.id));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const seconds = (Date.now() - started) / 1000;
  t.true(seconds > 2.5, `a 3 s file took ${seconds.toFixed(1)} s at its own rate`);
  t.is(source.stats.frames, 75);
  t.true(ids.length < 30, `${ids.length} frames taken by a consumer at 5 a second`);
  t.is(ids.length + source.stats.dropped, 75, 'each frame was either taken or counted as dropped');
  t.true(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'frames in order, newest each time');
});

test('ffmpeg arguments: a device, an RTSP stream (over TCP), a looping file paced at its rate; center-crop crops after scaling', (t) => {
  const target: RgbTarget = { width: 96, height: 96, resize: 'center-crop' };
  t.deepEqual(ffmpegArguments({ url: '/dev/video0', target, loop: true, realtime: true }).slice(3, 8), ['-nostdin', '-f', 'v4l2', '-i', '/dev/video0']);
  t.deepEqual(ffmpegArguments({ url: 'rtsp://cam/stream', target, loop: true, realtime: true }).slice(4, 12), ['-rtsp_transport', 'tcp', '-fflags', 'nobuffer+discardcorrupt', '-analyzeduration', '1000000', '-i', 'rtsp://cam/stream']);
  t.deepEqual(ffmpegArguments({ url: 'rtsp://0.0.0.0:8554/cam', target, loop: true, realtime: true, listen: true }).slice(4, 8), ['-rtsp_transport', 'tcp', '-rtsp_flags', 'listen']);
  t.throws(() => new StreamSource({ url: 'http://cam/x', target, loop: true, realtime: true, listen: true, stallTimeoutMs: 1000 }), { message: /source\.listen waits for a camera to push RTSP: give an rtsp:\/\/ address/ });
  const file = ffmpegArguments({ url: 'clip.mp4', target, loop: true, realtime: true });
  t.deepEqual(file.slice(4, 9), ['-re', '-stream_loop', '-1', '-i', 'clip.mp4']);
  t.true(file.includes('scale=96:96:force_original_aspect_ratio=increase:flags=area,crop=96:96'));
  t.deepEqual(file.slice(-5), ['-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1']);
});

test.serial('a camera that refuses the credentials: the reason names the URL without its password, and ffmpeg is restarted with backoff', async (t) => {
  const warnings = captureWarnings(t);
  const env = fakeFfmpeg(`${ONE_FRAME}; echo "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized" >&2; exit 1`);
  const url = 'rtsp://cam:XYZZY-cam-pass@127.0.0.1:8554/live';
  const source = new StreamSource({ url, target: TARGET, loop: true, realtime: true, stallTimeoutMs: 10_000, env, restartBackoff: { minMs: 30, maxMs: 60 } });
  t.teardown(() => source.close());
  const first = await source.next();
  t.truthy(first);
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.true(source.stats.restarts >= 2, `${source.stats.restarts} restarts`);
  const said = warnings.join('\n');
  t.regex(said, /the camera at rtsp:\/\/cam:\*\*\*@127\.0\.0\.1:8554\/live refused the credentials: check the user and password in source\.url/);
  t.false(said.includes('XYZZY'), said);
  t.is(warnings.length, 1, 'said once, not at every restart');
  t.false(source.name.includes('XYZZY'));
});

test.serial('a stream that stalls (no frame for stallTimeoutMs) is killed and started again; frames come again after it', async (t) => {
  const warnings = captureWarnings(t);
  const env = fakeFfmpeg(`${ONE_FRAME}; exec sleep 30`);
  const source = new StreamSource({ url: 'rtsp://127.0.0.1/stalls', target: TARGET, loop: true, realtime: true, stallTimeoutMs: 200, env, restartBackoff: { minMs: 20, maxMs: 40 } });
  t.teardown(() => source.close());
  t.is((await source.next())!.id, '1');
  t.is((await source.next())!.id, '2', 'the next frame came from a restarted ffmpeg');
  t.true(source.stats.restarts >= 1);
  t.regex(warnings.join('\n'), /no frame from stream rtsp:\/\/127\.0\.0\.1\/stalls for 0.2 s: the stream stalled/);
});

test('without ffmpeg, or without the camera device, the source says what is missing and how to fix it', (t) => {
  const noFfmpeg = { ...process.env, PATH: temporaryDir('edge-exit-empty-path-') };
  t.throws(() => new StreamSource({ url: 'rtsp://127.0.0.1/x', target: TARGET, loop: true, realtime: true, stallTimeoutMs: 1000, env: noFfmpeg }), {
    instanceOf: SourceError,
    message: /ffmpeg is not installed.*apt-get install ffmpeg/,
  });
  t.throws(() => new StreamSource({ url: '/dev/video97', target: TARGET, loop: true, realtime: true, stallTimeoutMs: 1000 }), {
    instanceOf: SourceError,
    message: /no camera at \/dev\/video97: is it plugged in\? \(ls \/dev\/video\*/,
  });
  t.throws(() => new StreamSource({ url: '/nowhere/clip.mp4', target: TARGET, loop: true, realtime: true, stallTimeoutMs: 1000 }), {
    instanceOf: SourceError,
    message: /video file \/nowhere\/clip\.mp4 does not exist/,
  });
});

agentWithFfmpeg('`edge-exit run` classifies a video file through ffmpeg end to end, logs every frame it took, and counts the ones it was too slow for', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const file = makeVideo('testsrc2', 2, 15);
  // 15 frames/s from the file, 5 taken: the rest are replaced by newer ones and counted.
  const agent = AgentProcess.start({ modelsDir, buildConfig }, { source: { kind: 'stream', url: file, loop: true, realtime: true }, gate: { mode: 'off' }, maxFrameRate: 5 }, { frames: 12 });
  t.teardown(() => agent.kill());
  t.is(await agent.exited, 0, agent.output);
  const rows = agent.inferences();
  t.is(rows.length, 12);
  t.true(rows.every((row) => row.source.startsWith('stream ') && row.label.length > 0));
  const dropped = Number(agent.output.match(/stopped: .*dropped (\d+)/)?.[1]);
  t.true(dropped >= 10, `${dropped} frames dropped, in the final status line`);
});

/** Processes whose parent is `pid` and whose command is `name`, from /proc. */
function childrenNamed(pid: number, name: string): number[] {
  return fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so read around its parentheses.
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      return ppid === pid && comm === name ? [Number(entry)] : [];
    } catch {
      return [];
    }
  });
}

agentWithFfmpeg('a network stream served by a second ffmpeg: the agent classifies it, and when its ffmpeg is killed mid-run it restarts it, says so once, and never shows the password', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const clip = makeVideo('testsrc2', 4, 10);
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  // The camera side: an HTTP MPEG-TS server (ffmpeg -listen 1 serves one client, so a loop serves the next).
  const camera = spawn('sh', ['-c', `while true; do ${FFMPEG} -hide_banner -loglevel error -re -stream_loop -1 -i ${clip} -c:v mpeg4 -q:v 5 -f mpegts -listen 1 http://127.0.0.1:${port}/live.ts; done`], { stdio: 'ignore', detached: true });
  t.teardown(() => process.kill(-camera.pid!, 'SIGKILL'));
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    { source: { kind: 'stream', url: `http://cam:XYZZY-cam-pass@127.0.0.1:${port}/live.ts`, stallTimeoutS: 10 }, gate: { mode: 'off' }, maxFrameRate: 5 },
  );
  t.teardown(() => agent.kill());
  await waitFor('frames from the network stream', () => agent.inferences().length >= 5, 60_000);
  const [child] = childrenNamed(agent.pid, 'ffmpeg');
  t.truthy(child, 'the agent runs one ffmpeg');
  process.kill(child!, 'SIGKILL');
  const before = agent.inferences().length;
  await waitFor('frames after the restart', () => agent.inferences().length >= before + 10, 60_000);
  t.true(agent.running);
  t.is(childrenNamed(agent.pid, 'ffmpeg').length, 1, 'one ffmpeg again');
  t.is(await agent.stop(), 0, agent.output);
  const restarts = agent.output.match(/was killed \(SIGKILL\); starting ffmpeg again/g) ?? [];
  t.is(restarts.length, 1, agent.output);
  t.regex(agent.output, /stream http:\/\/cam:\*\*\*@127\.0\.0\.1/);
  t.false(agent.output.includes('XYZZY'), 'no password in the output');
  for (const file of fs.readdirSync(agent.dir)) t.false(fs.readFileSync(path.join(agent.dir, file)).includes('XYZZY') && file !== 'agent.json', `no password in ${file}`);
  t.true(agent.inferences().every((row) => row.source === `stream http://cam:***@127.0.0.1:${port}/live.ts`));
});
