import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { CameraSource } from '../agent/sources/camera-source.js';
import { CIFAR_TEST, temporaryDir } from './helpers/shared.js';

/**
 * Fake camera programs at the OS boundary: executables on PATH named like the
 * real tools, which fail, hang, or write a JPEG to stdout as rpicam-still does.
 */
function fakeCameraPath(behaviour: Record<string, 'fail' | 'hang' | 'jpeg' | 'fail-then-jpeg'>): NodeJS.ProcessEnv {
  const bin = temporaryDir('edge-exit-fake-camera-');
  const jpeg = path.join(CIFAR_TEST, 'dog', '0000.jpg');
  for (const [name, kind] of Object.entries(behaviour)) {
    const counter = path.join(bin, `${name}.count`);
    const scripts = {
      fail: 'echo "ERROR: *** no cameras available ***" >&2; exit 1',
      hang: 'sleep 30',
      jpeg: `cat "${jpeg}"`,
      'fail-then-jpeg': `n=$(cat "${counter}" 2>/dev/null || echo 0); echo $((n+1)) > "${counter}"; if [ "$n" -lt 3 ]; then echo "camera busy" >&2; exit 1; fi; cat "${jpeg}"`,
    };
    fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${scripts[kind]}\n`, { mode: 0o755 });
  }
  return { ...process.env, PATH: `${bin}:/usr/bin:/bin` };
}

test('auto finds the first camera tool that works and returns its JPEG', async (t) => {
  const env = fakeCameraPath({ 'rpicam-still': 'fail', 'libcamera-still': 'jpeg' });
  const camera = new CameraSource({ command: 'auto', width: 640, height: 480, timeoutMs: 2000, env });
  const frame = await camera.next();
  t.is(frame!.origin, 'libcamera-still');
  t.is(frame!.bytes[0], 0xff);
  t.is(frame!.bytes[1], 0xd8);
  await camera.close();
});

test('a failing camera is retried with growing backoff until it works', async (t) => {
  const env = fakeCameraPath({ 'rpicam-still': 'fail-then-jpeg' });
  const camera = new CameraSource({ command: 'rpicam-still', width: 640, height: 480, timeoutMs: 2000, retryBaseMs: 20, retryMaxMs: 200, env });
  const started = Date.now();
  const frame = await camera.next();
  t.truthy(frame);
  t.is(camera.consecutiveFailures, 0);
  // Three failures: 20 + 40 + 80 ms of backoff, each cut by up to a quarter (the shared schedule's jitter).
  t.true(Date.now() - started >= 105);
  await camera.close();
});

test('a camera that hangs is killed at the timeout and counted as a failure, without blocking the agent for good', async (t) => {
  const env = fakeCameraPath({ 'rpicam-still': 'hang' });
  const camera = new CameraSource({ command: 'rpicam-still', width: 640, height: 480, timeoutMs: 300, retryBaseMs: 10, retryMaxMs: 10, env });
  const pending = camera.next();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.true(camera.consecutiveFailures >= 2, `${camera.consecutiveFailures} failures`);
  await camera.close();
  t.is(await pending, undefined);
});
