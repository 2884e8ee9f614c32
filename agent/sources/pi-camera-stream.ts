import { ChildStreamSource, JpegSplitter, onPath, SourceError } from './child-stream.js';

/*
 * The Raspberry Pi camera as a video stream: rpicam-vid (current Raspberry Pi OS) or
 * libcamera-vid (Bullseye) writing MJPEG to stdout, kept running, so the camera stack
 * and its exposure stay settled between frames (a still per frame restarts them).
 */

export const PI_VIDEO_COMMANDS = ['rpicam-vid', 'libcamera-vid'] as const;
export type PiVideoCommand = (typeof PI_VIDEO_COMMANDS)[number];

export interface PiCameraStreamOptions {
  command: PiVideoCommand | 'auto';
  width: number;
  height: number;
  frameRate: number;
  stallTimeoutMs: number;
  restartBackoff?: { minMs: number; maxMs: number };
  env?: NodeJS.ProcessEnv;
}

/** The video tool on this system, or undefined (then the stills tools are the way). */
export function findPiVideoCommand(env: NodeJS.ProcessEnv = process.env): PiVideoCommand | undefined {
  return PI_VIDEO_COMMANDS.find((command) => onPath(command, env));
}

export function piVideoArguments(options: Pick<PiCameraStreamOptions, 'width' | 'height' | 'frameRate'>): string[] {
  return ['-t', '0', '-n', '--codec', 'mjpeg', '--width', String(options.width), '--height', String(options.height), '--framerate', String(options.frameRate), '-o', '-'];
}

function explainFailure(command: string, stderr: string): string {
  if (/no cameras available/i.test(stderr)) return `${command} found no camera: is the ribbon cable seated, and the camera enabled (camera_auto_detect=1 in config.txt)?`;
  if (/busy|Device or resource busy/i.test(stderr)) return `the camera is busy: another program (a second agent, a preview) holds it`;
  const last = stderr.trim().split('\n').at(-1) ?? '';
  return `${command} stopped${last ? `: ${last}` : ''}`;
}

export class PiCameraStream extends ChildStreamSource {
  constructor(options: PiCameraStreamOptions) {
    const command = options.command === 'auto' ? findPiVideoCommand(options.env) : options.command;
    if (!command) throw new SourceError('no rpicam-vid or libcamera-vid on this system: apt-get install rpicam-apps, or set source.command to a stills tool (raspistill on the legacy stack)');
    const name = `camera ${command}`;
    super({
      name,
      program: command,
      args: piVideoArguments(options),
      env: options.env,
      splitter: new JpegSplitter(),
      toFrame: (bytes, id, capturedAt) => ({ id, origin: name, bytes, capturedAt }),
      endsOnCleanExit: false,
      stallTimeoutMs: options.stallTimeoutMs,
      restartBackoff: options.restartBackoff,
      explainFailure: (stderr) => explainFailure(command, stderr),
      installHint: 'apt-get install rpicam-apps',
    });
  }
}
