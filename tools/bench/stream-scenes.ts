/**
 * Test videos with a known ground truth, made with ffmpeg from ../shared images: a real
 * photo as the background, with sensor noise and a slow lighting drift, and CIFAR-10
 * objects pasted in for a few seconds at random times (the quiet scene), or an object
 * moving in every frame (the busy scene). Encoded as H.264, as a camera would send it.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { seededRandom } from '../../agent/datasets/split.js';
import { encodedImageToRgb } from '../../agent/preprocess/image-to-rgb.js';

export interface SceneTruth {
  /** First and last frame (inclusive) the object is in the scene. */
  start: number;
  end: number;
  label: string;
}

export interface Scene {
  kind: 'quiet' | 'busy';
  file: string;
  fps: number;
  frames: number;
  truth: SceneTruth[];
}

const WIDTH = 320;
const HEIGHT = 240;
const OBJECT = 96;

function paste(frame: Uint8Array, object: Uint8Array, x: number, y: number): void {
  for (let row = 0; row < OBJECT; row++) frame.set(object.subarray(row * OBJECT * 3, (row + 1) * OBJECT * 3), ((y + row) * WIDTH + x) * 3);
}

export interface SceneOptions {
  kind: 'quiet' | 'busy';
  seconds: number;
  fps: number;
  background: string;
  /** An ImageFolder of CIFAR-10 images (class folders). */
  objects: string;
  outDir: string;
  seed: number;
}

export async function makeScene(options: SceneOptions): Promise<Scene> {
  const random = seededRandom(options.seed);
  const background = await encodedImageToRgb(fs.readFileSync(options.background), { width: WIDTH, height: HEIGHT, resize: 'center-crop' });
  const classes = fs.readdirSync(options.objects).sort();
  const object = async (label: string, index: number) =>
    encodedImageToRgb(fs.readFileSync(path.join(options.objects, label, fs.readdirSync(path.join(options.objects, label)).sort()[index]!)), { width: OBJECT, height: OBJECT, resize: 'stretch' });
  const frames = Math.round(options.seconds * options.fps);
  const truth: SceneTruth[] = [];
  const placed: Array<{ start: number; end: number; pixels: Uint8Array; x: number; y: number }> = [];
  if (options.kind === 'quiet') {
    // Objects 3-6 s long, apart from each other by at least 5 s.
    let at = Math.round(5 * options.fps);
    while (at < frames - 8 * options.fps) {
      const length = Math.round((3 + random() * 3) * options.fps);
      const label = classes[Math.floor(random() * classes.length)]!;
      placed.push({ start: at, end: at + length - 1, pixels: await object(label, Math.floor(random() * 50)), x: Math.floor(random() * (WIDTH - OBJECT)), y: Math.floor(random() * (HEIGHT - OBJECT)) });
      truth.push({ start: at, end: at + length - 1, label });
      at += length + Math.round((5 + random() * 10) * options.fps);
    }
  }
  const busyObjects = options.kind === 'busy' ? await Promise.all(classes.map((label, i) => object(label, i))) : [];

  const file = path.join(options.outDir, `${options.kind}.mp4`);
  fs.mkdirSync(options.outDir, { recursive: true });
  const ffmpeg = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${WIDTH}x${HEIGHT}`, '-r', String(options.fps), '-i', '-', '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '18', '-pix_fmt', 'yuv420p', file], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  ffmpeg.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<void>((resolve, reject) => ffmpeg.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg could not encode ${file}: ${stderr}`)))));
  for (let i = 0; i < frames; i++) {
    const frame = Uint8Array.from(background);
    if (options.kind === 'quiet') {
      for (const item of placed) if (i >= item.start && i <= item.end) paste(frame, item.pixels, item.x, item.y);
    } else {
      // A new object every second, moving across the scene in every frame.
      const second = Math.floor(i / options.fps);
      const x = Math.round(((i % options.fps) / options.fps) * (WIDTH - OBJECT));
      paste(frame, busyObjects[second % busyObjects.length]!, x, (second * 37) % (HEIGHT - OBJECT));
      if (i % options.fps === 0) truth.push({ start: i, end: Math.min(frames, i + options.fps) - 1, label: classes[second % classes.length]! });
    }
    // Lighting drifts by ±12% over a minute; the sensor adds noise of ±6 levels.
    const gain = 1 + 0.12 * Math.sin((2 * Math.PI * i) / (60 * options.fps));
    for (let p = 0; p < frame.length; p++) frame[p] = Math.max(0, Math.min(255, Math.round(frame[p]! * gain + (random() * 2 - 1) * 6)));
    if (!ffmpeg.stdin!.write(frame)) await new Promise((resolve) => ffmpeg.stdin!.once('drain', resolve));
  }
  ffmpeg.stdin!.end();
  await done;
  return { kind: options.kind, file, fps: options.fps, frames, truth };
}
