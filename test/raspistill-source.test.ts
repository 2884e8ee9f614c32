import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { createFrameSource } from '../agent/sources/create-source.js';
import { RaspistillSource } from '../agent/sources/raspistill-source.js';
import { sourceSchema } from '../agent/config/agent-config.js';
import { imageFileToRgb } from '../agent/preprocess/image-to-rgb.js';
import { captureWarnings } from './helpers/warnings.js';
import { SHARED, temporaryDir } from './helpers/shared.js';

/*
 * The legacy stack's camera through node-raspistill, against a fake raspistill first on
 * PATH that writes JPEGs to stdout as raspistill's timelapse does. node-raspistill starts
 * its child with the process's own environment, so these tests set PATH and run serially.
 */

async function fakeRaspistill(t: import('ava').ExecutionContext, body: (jpeg: string) => string): Promise<{ starts: () => string[] }> {
  const dir = temporaryDir('edge-exit-fake-raspistill-');
  const jpeg = path.join(dir, 'frame.jpg');
  // The real photo (a BMP, which sharp does not read) through the agent's own decoder, then as the camera's JPEG.
  const rgb = await imageFileToRgb(path.join(SHARED, 'images', 'cat.bmp'), { width: 160, height: 120, resize: 'stretch' });
  fs.writeFileSync(jpeg, await sharp(rgb, { raw: { width: 160, height: 120, channels: 3 } }).jpeg().toBuffer());
  const log = path.join(dir, 'starts.log');
  fs.writeFileSync(path.join(dir, 'raspistill'), `#!/bin/sh\necho "$*" >> ${log}\n${body(jpeg)}\n`, { mode: 0o755 });
  const previous = process.env.PATH;
  process.env.PATH = `${dir}:${previous}`;
  t.teardown(() => {
    process.env.PATH = previous;
  });
  return { starts: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []) };
}

test.serial('raspistill runs once in timelapse mode and keeps the camera open: frame after frame from one process, the newest each time', async (t) => {
  const fake = await fakeRaspistill(t, (jpeg) => `while true; do cat ${jpeg}; sleep 0.05; done`);
  const source = await createFrameSource(sourceSchema.parse({ kind: 'camera', command: 'raspistill', width: 160, height: 120, frameRate: 20 }), { width: 96, height: 96, resize: 'stretch' });
  t.true(source instanceof RaspistillSource);
  t.teardown(() => source.close());
  const frames = [];
  for (let i = 0; i < 10; i++) {
    frames.push((await source.next())!);
    // A consumer slower than the camera: stale frames are dropped and counted.
    await new Promise((resolve) => setTimeout(resolve, 120));
  }
  for (const frame of frames) {
    t.is(frame.bytes[0], 0xff);
    t.is(frame.bytes[1], 0xd8);
    t.is((await sharp(frame.bytes).metadata()).width, 160, 'a whole JPEG each time');
  }
  t.deepEqual(frames.map((f) => Number(f.id)), [...frames.map((f) => Number(f.id))].sort((a, b) => a - b));
  t.true((source as RaspistillSource).droppedFrames > 0, 'frames the consumer was too slow for were dropped');
  const starts = fake.starts();
  t.is(starts.length, 1, `one raspistill for ${frames.length} frames: ${starts.join(' | ')}`);
  t.regex(starts[0]!, /-tl 50\b/, 'timelapse at the frame rate');
  t.regex(starts[0]!, /-o -/, 'JPEGs on stdout, nothing on disk');
  t.regex(starts[0]!, /-w 160 -h 120|-h 120 -w 160/);
});

test.serial('a raspistill that stalls is stopped and started again with backoff, said once', async (t) => {
  const warnings = captureWarnings(t);
  const fake = await fakeRaspistill(t, (jpeg) => `for i in 1 2 3; do cat ${jpeg}; sleep 0.05; done\nexec sleep 600`);
  const source = new RaspistillSource({ width: 160, height: 120, frameRate: 20, stallTimeoutMs: 300, restartBackoff: { minMs: 50, maxMs: 100 } });
  t.teardown(() => source.close());
  let taken = 0;
  while (fake.starts().length < 3) {
    if ((await source.next()) !== undefined) taken++;
  }
  t.true(taken >= 4, `${taken} frames across restarts`);
  t.true(source.stats.restarts >= 2);
  const said = warnings.filter((w) => w.includes('raspistill'));
  t.is(said.length, 1, said.join('\n'));
  t.regex(said[0]!, /no frame from raspistill for 0\.3 s: the camera stalled; starting raspistill again/);
});

test.serial('without raspistill the legacy camera says what to install', (t) => {
  const previous = process.env.PATH;
  process.env.PATH = temporaryDir('edge-exit-empty-path-');
  t.teardown(() => {
    process.env.PATH = previous;
  });
  t.throws(() => new RaspistillSource({ width: 160, height: 120, frameRate: 10, stallTimeoutMs: 1000 }), { message: /raspistill is not installed.*apt-get install libraspberrypi-bin/ });
});
