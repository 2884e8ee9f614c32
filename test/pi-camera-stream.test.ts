import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { JpegSplitter, SourceError } from '../agent/sources/child-stream.js';
import { findPiVideoCommand, PiCameraStream } from '../agent/sources/pi-camera-stream.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { captureWarnings } from './helpers/warnings.js';

/*
 * The Pi camera as a stream, against fake rpicam-vid programs first on PATH that write
 * real JPEGs as MJPEG to stdout, and can be told to die or to stall.
 */

const JPEGS = ['cat', 'dog', 'ship'].map((name) => path.join(CIFAR_TEST, name, '0000.jpg'));

/** A fake camera tool named `name` running `body` (sh), with $JPEGS set to three real JPEGs. */
function fakeCamera(name: string, body: string): { env: NodeJS.ProcessEnv; argsFile: string } {
  const bin = temporaryDir('edge-exit-fake-rpicam-');
  const argsFile = path.join(bin, 'args');
  fs.writeFileSync(path.join(bin, name), `#!/bin/sh\necho "$@" > "${argsFile}"\nJPEGS="${JPEGS.join(' ')}"\n${body}\n`, { mode: 0o755 });
  return { env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` }, argsFile };
}

const options = { command: 'auto' as const, width: 640, height: 480, frameRate: 10, stallTimeoutMs: 5000 };

test('MJPEG cut at any chunk boundary gives back each JPEG exactly', (t) => {
  const jpegs = JPEGS.map((file) => fs.readFileSync(file));
  const stream = Buffer.concat([Buffer.from('noise before'), ...jpegs, jpegs[0]!.subarray(0, 100)]);
  for (const size of [1, 2, 7, 64, 1000, stream.length]) {
    const splitter = new JpegSplitter();
    const frames: Buffer[] = [];
    for (let at = 0; at < stream.length; at += size) frames.push(...splitter.push(stream.subarray(at, at + size)));
    t.deepEqual(frames, jpegs, `chunks of ${size}`);
  }
});

test.serial('rpicam-vid is kept running and its MJPEG arrives frame by frame; a slow consumer gets the newest and the rest are counted as dropped', async (t) => {
  const { env, argsFile } = fakeCamera('rpicam-vid', 'while true; do for f in $JPEGS; do cat "$f"; sleep 0.02; done; done');
  t.is(findPiVideoCommand(env), 'rpicam-vid');
  const camera = new PiCameraStream({ ...options, env });
  t.teardown(() => camera.close());
  const first = await camera.next();
  t.deepEqual(first!.bytes, fs.readFileSync(JPEGS[0]!));
  t.is(camera.name, 'camera rpicam-vid');
  t.regex(fs.readFileSync(argsFile, 'utf8'), /-t 0 -n --codec mjpeg --width 640 --height 480 --framerate 10 -o -/);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const newest = await camera.next();
  t.true(Number(newest!.id) > 10, `frame ${newest!.id} after half a second`);
  t.true(camera.stats.dropped >= Number(newest!.id) - 3, `${camera.stats.dropped} dropped`);
  t.is(camera.stats.restarts, 0, 'one process the whole time');
});

test.serial('a camera tool that dies is started again with backoff, and says so once', async (t) => {
  const warnings = captureWarnings(t);
  const { env } = fakeCamera('libcamera-vid', 'cat $JPEGS; echo "ERROR: *** no cameras available ***" >&2; exit 1');
  const camera = new PiCameraStream({ ...options, command: 'libcamera-vid', env, restartBackoff: { minMs: 20, maxMs: 40 } });
  t.teardown(() => camera.close());
  const ids: string[] = [];
  for (let i = 0; i < 9; i++) ids.push((await camera.next())!.id);
  t.true(camera.stats.restarts >= 2, `${camera.stats.restarts} restarts for ${ids.length} frames`);
  t.is(warnings.length, 1, warnings.join('\n'));
  t.regex(warnings[0]!, /libcamera-vid found no camera: is the ribbon cable seated, and the camera enabled/);
});

test.serial('a camera tool that stalls is killed after stallTimeoutMs and started again', async (t) => {
  const warnings = captureWarnings(t);
  const { env } = fakeCamera('rpicam-vid', 'cat "${JPEGS%% *}"; exec sleep 30');
  const camera = new PiCameraStream({ ...options, env, stallTimeoutMs: 200, restartBackoff: { minMs: 20, maxMs: 40 } });
  t.teardown(() => camera.close());
  await camera.next();
  await camera.next();
  t.is(camera.stats.restarts, 1);
  t.regex(warnings.join('\n'), /no frame from camera rpicam-vid for 0\.2 s: the stream stalled/);
});

test('without rpicam-vid or libcamera-vid, asking for a video camera says what to install', (t) => {
  const env = { ...process.env, PATH: temporaryDir('edge-exit-empty-path-') };
  t.is(findPiVideoCommand(env), undefined);
  t.throws(() => new PiCameraStream({ ...options, env }), { instanceOf: SourceError, message: /apt-get install rpicam-apps/ });
  t.throws(() => new PiCameraStream({ ...options, command: 'rpicam-vid', env }), { instanceOf: SourceError, message: /rpicam-vid is not installed.*apt-get install rpicam-apps/ });
});
