import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseAgentConfig } from '../agent/config/agent-config.js';
import { MotionGate, SCENE_SETTLE_FRAMES, SCENE_SETTLE_MAX_FRAMES } from '../agent/gate/motion-gate.js';
import { cropToRegion } from '../agent/preprocess/crop.js';
import { encodedImageToRgb } from '../agent/preprocess/image-to-rgb.js';
import { AgentProcess } from './helpers/agent-process.js';
import { seededRandom } from './helpers/resilience.js';
import { CAT_PHOTO, CIFAR_TEST, temporaryDir } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

/* The motion gate on a real photo, with the noise and light a camera adds, and an object that walks in. */

const SIZE = 96;
const defaults = parseAgentConfig({}).gate;

async function scene(): Promise<Uint8Array> {
  return encodedImageToRgb(fs.readFileSync(CAT_PHOTO), { width: SIZE, height: SIZE, resize: 'center-crop' });
}

/** The scene as a camera sees it: sensor noise of ±`noise`, brightness times `gain` plus `lift`. */
function camera(base: Uint8Array, random: () => number, noise: number, gain = 1, lift = 0): Uint8Array {
  return base.map((v) => Math.max(0, Math.min(255, Math.round(v * gain + lift + (random() * 2 - 1) * noise))));
}

/** A 32x32 CIFAR-10 object pasted into the scene at (x, y). */
async function withObject(base: Uint8Array, x: number, y: number): Promise<Uint8Array> {
  const object = await encodedImageToRgb(fs.readFileSync(path.join(CIFAR_TEST, 'horse', '0000.jpg')), { width: 32, height: 32, resize: 'stretch' });
  const frame = Uint8Array.from(base);
  for (let row = 0; row < 32; row++) frame.set(object.subarray(row * 32 * 3, (row + 1) * 32 * 3), ((y + row) * SIZE + x) * 3);
  return frame;
}

test('a still scene with sensor noise and a slow lighting ramp triggers nothing; an object walking in does; once it stands still it fades into the background', async (t) => {
  const random = seededRandom(11);
  const base = await scene();
  const gate = new MotionGate(defaults, SIZE, SIZE);
  t.false(gate.observe(camera(base, random, 8)).motion, 'the first frame becomes the background');
  // Dusk over 120 frames: the whole scene 30% darker, with noise on every frame.
  const quiet = Array.from({ length: 120 }, (_, i) => gate.observe(camera(base, random, 8, 1 - (0.3 * i) / 120)));
  t.deepEqual(quiet.filter((r) => r.motion).length, 0, `largest change ${Math.max(...quiet.map((r) => r.changedShare)).toFixed(4)} of the frame`);

  const dim = camera(base, random, 0, 0.7);
  const entered = gate.observe(camera(await withObject(dim, 40, 30), random, 8));
  t.true(entered.motion, `an object entering changes ${entered.changedShare.toFixed(3)} of the frame`);
  t.false(entered.lighting);
  // It stays: the running background takes it in, and the frames go quiet again.
  const standing = await withObject(dim, 40, 30);
  const after = Array.from({ length: 120 }, () => gate.observe(camera(standing, random, 8)).motion);
  t.false(after.slice(-20).some(Boolean), 'quiet again after it stood still');
});

test('a sudden change over most of the frame is light, not motion: the background is reset to it', async (t) => {
  const random = seededRandom(12);
  const base = await scene();
  const gate = new MotionGate({ ...defaults, lightningThreshold: 0.3 }, SIZE, SIZE);
  gate.observe(base);
  // A light switched on unevenly: brighter, and a gradient across the frame, beyond what one offset explains.
  const lit = base.map((v, i) => Math.min(255, Math.round(v * 1.2 + ((i / 3) % SIZE) * 1.2)));
  const flash = gate.observe(lit);
  t.true(flash.lighting, `${flash.changedShare.toFixed(2)} of the frame changed at once`);
  t.false(flash.motion);
  t.false(gate.observe(camera(lit, random, 4)).motion, 'the lit scene is the background now');
  // improveContrast makes a dim scene's structure count: same result on a dark copy.
  const dark = new MotionGate({ ...defaults, improveContrast: true }, SIZE, SIZE);
  const darkScene = camera(base, random, 0, 0.15);
  dark.observe(darkScene);
  t.false(dark.observe(camera(darkScene, random, 1)).motion);
  t.true(dark.observe(camera(await withObject(darkScene, 10, 10), random, 1)).motion, 'an object in the dark is still seen');
});

const FFMPEG = fs.existsSync('/usr/bin/ffmpeg');
(FFMPEG ? test : test.skip)('`edge-exit run` on a still camera: the gate skips inference until the reuse age runs out, and says so in status', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const video = path.join(temporaryDir('edge-exit-still-'), 'still.mkv');
  execFileSync('/usr/bin/ffmpeg', ['-hide_banner', '-loglevel', 'error', '-loop', '1', '-i', CAT_PHOTO, '-t', '4', '-r', '10', '-vf', 'scale=160:120', '-c:v', 'ffv1', video]);
  const agent = AgentProcess.start(
    { modelsDir, buildConfig },
    { source: { kind: 'stream', url: video, loop: true }, gate: { maxReuseS: 1 }, maxFrameRate: 10, statusIntervalMs: 200 },
    { frames: 3 },
  );
  t.teardown(() => agent.kill());
  t.is(await agent.exited, 0, agent.output);
  const rows = agent.inferences();
  t.is(rows.length, 3);
  // Nothing moves: after the first frame, the model runs only when the 1 s reuse age has run out.
  const gaps = rows.slice(1).map((row, i) => row.ts - rows[i]!.ts);
  t.true(gaps.every((gap) => gap >= 900), `gaps between inferences: ${gaps.join(', ')} ms`);
  t.regex(agent.output, /still \d+/, 'the status line counts the frames the gate let stand');
});

test('motion has a region where the change is, and the square around it, scaled to the frame, shows the object large', async (t) => {
  const random = seededRandom(13);
  const base = await scene();
  const gate = new MotionGate(defaults, SIZE, SIZE);
  gate.observe(camera(base, random, 4));
  const frame = camera(await withObject(base, 40, 30), random, 4);
  const { motion, region } = gate.observe(frame);
  t.true(motion);
  // The grey copy is 64 wide, so the region is in steps of 96/64 (1 pixel here), a cell or so around the object.
  t.true(region!.x >= 36 && region!.x <= 42 && region!.y >= 26 && region!.y <= 32, JSON.stringify(region));
  t.true(region!.width >= 30 && region!.width <= 40 && region!.height >= 30 && region!.height <= 40, JSON.stringify(region));
  const crop = cropToRegion(frame, SIZE, SIZE, region!);
  t.is(crop.length, frame.length);
  // The object's own pixels now fill the middle of the frame: its centre pixel sits at the crop's centre.
  const centre = (image: Uint8Array, x: number, y: number) => Array.from(image.subarray((y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3));
  const expected = centre(frame, 56, 46);
  const got = centre(crop, 48, 48);
  t.true(got.every((v, k) => Math.abs(v - expected[k]!) < 40), `${got} against ${expected}`);
});

test('zones: change outside them is ignored; inside, a small zone is as sensitive as the whole frame', async (t) => {
  const random = seededRandom(17);
  const base = await scene();
  // The object walks in at the top left (40..72, 30..62 of 96); the zone is the right half.
  const zoned = new MotionGate({ ...defaults, zones: [{ x: 0.5, y: 0, width: 0.5, height: 1 }] }, SIZE, SIZE);
  zoned.observe(camera(base, random, 4));
  t.false(zoned.observe(camera(await withObject(base, 0, 0), random, 4)).motion, 'outside the zone');
  const inside = zoned.observe(camera(await withObject(base, 60, 40), random, 4));
  t.true(inside.motion, 'inside the zone');
  t.true(inside.region!.x >= 48, `the region is only what moved inside the zone: ${JSON.stringify(inside.region)}`);
});

/** A CIFAR-10 test image blown up to the frame: a different picture from the photo, as the next image of a replay is. */
async function otherImage(): Promise<Uint8Array> {
  return encodedImageToRgb(fs.readFileSync(path.join(CIFAR_TEST, 'ship', '0003.jpg')), { width: SIZE, height: SIZE, resize: 'stretch' });
}

test('a whole-scene change is never "no motion": the gate says settling while the exposure moves, then sceneChanged once on the first settled frame', async (t) => {
  const random = seededRandom(21);
  const base = await scene();
  // As in the test above, a lightning threshold this photo's change of light passes (brightness compensation takes most of it).
  const gate = new MotionGate({ ...defaults, lightningThreshold: 0.4 }, SIZE, SIZE);
  for (let i = 0; i < 5; i++) gate.observe(camera(base, random, 6));
  // The lights come on: a bright, uneven scene, then auto exposure pulls the gain back over a few frames and holds.
  const lit = (gain: number) => camera(base.map((v, i) => Math.min(255, Math.round(v * 0.6 + ((i / 3) % SIZE) * 1.3))), random, 6, gain);
  const readings = [1.6, 1.35, 1.2, 1.1, 1, 1, 1, 1, 1, 1, 1, 1].map((gain) => gate.observe(lit(gain)));
  t.true(readings[0]!.lighting, `${readings[0]!.changedShare.toFixed(2)} of the frame changed at once`);
  t.true(readings.every((r) => !r.motion), 'lighting is not motion');
  const changedAt = readings.findIndex((r) => r.sceneChanged);
  t.true(changedAt > 4, `sceneChanged once the gain holds, not while it moves (frame ${changedAt})`);
  t.true(changedAt <= 4 + 1 + SCENE_SETTLE_FRAMES, `and soon after it does (frame ${changedAt})`);
  t.is(readings.filter((r) => r.sceneChanged).length, 1, 'one fresh classification, not one a frame');
  t.true(readings.slice(0, changedAt).every((r) => r.settling), 'every frame before it says it is settling');
  t.true(readings.slice(changedAt).every((r) => !r.settling), 'settled from then on');
  t.false(gate.observe(lit(1)).motion, 'the lit scene is the background now');
});

test('a different image in place of the scene (a replay, a knocked camera) is a scene change, classified fresh once it holds still', async (t) => {
  const random = seededRandom(22);
  const gate = new MotionGate(defaults, SIZE, SIZE);
  const base = await scene();
  for (let i = 0; i < 3; i++) gate.observe(camera(base, random, 4));
  const other = await otherImage();
  const readings = Array.from({ length: 8 }, () => gate.observe(camera(other, random, 4)));
  t.true(readings[0]!.lighting && readings[0]!.settling, JSON.stringify(readings[0]));
  t.is(readings.findIndex((r) => r.sceneChanged), SCENE_SETTLE_FRAMES, 'the first frame that held still against the new picture for SCENE_SETTLE_FRAMES frames');
});

test('a scene that never settles (each frame a new picture) is still classified fresh, at most every SCENE_SETTLE_MAX_FRAMES frames', async (t) => {
  const gate = new MotionGate(defaults, SIZE, SIZE);
  const a = await scene();
  const b = await otherImage();
  const readings = Array.from({ length: 3 * SCENE_SETTLE_MAX_FRAMES }, (_, i) => gate.observe(i % 2 === 0 ? a : b));
  const changed = readings.flatMap((r, i) => (r.sceneChanged ? [i] : []));
  t.true(changed.length >= 2, `fresh classifications at frames ${changed.join(', ')}`);
  t.true(readings.every((r) => !r.motion && (r.settling || r.sceneChanged)), 'no frame reads as a quiet scene whose old label stands');
});
