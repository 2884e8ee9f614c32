import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../../common/log/logger.js';
import { onPath, SourceError } from './child-stream.js';

/*
 * The demo camera of the default run: a video made once, with ffmpeg, from ../shared (the
 * photo as a still scene with sensor noise and a slow change of light, and CIFAR-10 objects
 * that come in for a few seconds each), then streamed in a loop as a camera would be. Nothing
 * of ../shared is committed: the video is made on the machine that runs the demo.
 */

export const DEMO_SECONDS = 120;
/** Every this many seconds an object comes in, and stays OBJECT_SECONDS. */
const OBJECT_EVERY_S = 15;
const OBJECT_SECONDS = 5;

/** One test image of each of the first classes, in a fixed order. */
function demoObjects(dataset: string, count: number): string[] {
  const classes = fs.readdirSync(dataset).sort();
  return Array.from({ length: count }, (_, i) => {
    const folder = path.join(dataset, classes[(i * 3) % classes.length]!);
    return path.join(folder, fs.readdirSync(folder).sort()[i]!);
  });
}

/** The ffmpeg arguments that make the demo video from a background photo and object images. */
export function demoVideoArguments(background: string, objects: string[], out: string): string[] {
  const inputs = ['-loop', '1', '-i', background, ...objects.flatMap((file) => ['-loop', '1', '-i', file])];
  const chain = ['[0:v]scale=320:240,setsar=1[s0]'];
  objects.forEach((_, i) => {
    const start = 5 + i * OBJECT_EVERY_S;
    chain.push(`[${i + 1}:v]scale=96:96[o${i}]`, `[s${i}][o${i}]overlay=x=${20 + ((i * 67) % 200)}:y=${20 + ((i * 41) % 120)}:enable='between(t,${start},${start + OBJECT_SECONDS})'[s${i + 1}]`);
  });
  chain.push(`[s${objects.length}]noise=alls=6:allf=t,eq=brightness='0.04*sin(2*PI*t/60)':eval=frame[v]`);
  return ['-hide_banner', '-loglevel', 'error', '-y', ...inputs, '-filter_complex', chain.join(';'), '-map', '[v]', '-t', String(DEMO_SECONDS), '-r', '10', '-c:v', 'mpeg4', '-q:v', '3', out];
}

/** The demo video under `dir`, made first if it is not there yet (a few seconds, once). */
export async function ensureDemoVideo(dir: string, shared: string): Promise<string> {
  const out = path.join(dir, 'demo-scene.mp4');
  if (fs.existsSync(out)) return out;
  if (!onPath('ffmpeg')) throw new SourceError('the demo camera needs ffmpeg to make its video: apt-get install ffmpeg');
  const background = path.join(shared, 'images', 'cat.bmp');
  const dataset = path.join(shared, 'data', 'cifar10', 'test');
  if (!fs.existsSync(background) || !fs.existsSync(dataset)) throw new SourceError(`the demo camera is made from ${background} and ${dataset}: put ../shared beside the checkout, or set EDGE_EXIT_SHARED_DIR`);
  fs.mkdirSync(dir, { recursive: true });
  const partial = `${out}.partial.mp4`;
  logger.info(`demo camera: making ${out} from ../shared with ffmpeg (once)`);
  const child = spawn('ffmpeg', demoVideoArguments(background, demoObjects(dataset, Math.floor((DEMO_SECONDS - 10) / OBJECT_EVERY_S)), partial), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) {
    fs.rmSync(partial, { force: true });
    throw new SourceError(`ffmpeg could not make the demo video: ${stderr.trim().split('\n').at(-1) ?? `exit ${code}`}`);
  }
  // Renamed only once whole: a run stopped halfway never leaves a broken demo behind.
  fs.renameSync(partial, out);
  return out;
}
