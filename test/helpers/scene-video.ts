import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { CAT_PHOTO, CIFAR_TEST, temporaryDir } from './shared.js';

/** A scene at 10 frames/s, made with Debian's ffmpeg: the cat photo, with a CIFAR-10 horse pasted in from `horseFromS` to `horseToS`. */
export function horseSceneVideo(seconds: number, horseFromS: number, horseToS: number): string {
  const file = path.join(temporaryDir('edge-exit-scene-'), 'scene.mkv');
  const horse = path.join(CIFAR_TEST, 'horse', '0000.jpg');
  execFileSync('/usr/bin/ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-loop', '1', '-i', CAT_PHOTO, '-loop', '1', '-i', horse,
    '-filter_complex', `[0]scale=160:120[bg];[1]scale=48:48[fg];[bg][fg]overlay=50:30:enable='between(t,${horseFromS},${horseToS})'`,
    '-t', String(seconds), '-r', '10', '-c:v', 'ffv1', file,
  ]);
  return file;
}
