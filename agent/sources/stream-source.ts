import fs from 'node:fs';
import { redactUrl } from '../config/agent-config.js';
import type { RgbTarget } from '../preprocess/image-to-rgb.js';
import { ChildStreamSource, FixedSizeSplitter, SourceError } from './child-stream.js';

/*
 * USB (V4L2) cameras, RTSP/HTTP streams and video files through one long-running
 * ffmpeg. ffmpeg decodes and scales to the model's input, and writes raw RGB: no frame
 * is JPEG-encoded and decoded again.
 */

export interface StreamSourceOptions {
  /** A video file, a V4L2 device (/dev/video0), or an rtsp:// or http(s):// URL. */
  url: string;
  target: RgbTarget;
  /** Files: start again at the end. */
  loop: boolean;
  /** Files: deliver at the file's own frame rate (true) or as fast as they decode (false). */
  realtime: boolean;
  /** rtsp:// only: wait at that address for the camera to push its stream (RTSP RECORD), rather than ask for it. */
  listen?: boolean;
  /** No frame for this long: the stream is stalled, and ffmpeg is restarted. */
  stallTimeoutMs: number;
  restartBackoff?: { minMs: number; maxMs: number };
  /** The environment ffmpeg runs in (its PATH is where it is looked for). */
  env?: NodeJS.ProcessEnv;
}

type InputKind = 'device' | 'network' | 'file';

function inputKind(url: string): InputKind {
  if (url.startsWith('/dev/')) return 'device';
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? 'network' : 'file';
}

/** The ffmpeg arguments: input by kind, then scale (and crop) to the model input as raw RGB on stdout. */
export function ffmpegArguments(options: Pick<StreamSourceOptions, 'url' | 'target' | 'loop' | 'realtime' | 'listen'>): string[] {
  const { width, height, resize } = options.target;
  const kind = inputKind(options.url);
  const input =
    kind === 'device'
      ? ['-f', 'v4l2', '-i', options.url]
      : kind === 'network'
        ? // A live stream: probe a second, not ffmpeg's default five, and drop corrupt packets rather than stall on them.
          [...(options.url.startsWith('rtsp') ? ['-rtsp_transport', 'tcp', ...(options.listen ? ['-rtsp_flags', 'listen'] : [])] : []), '-fflags', 'nobuffer+discardcorrupt', '-analyzeduration', '1000000', '-i', options.url]
        : [...(options.realtime ? ['-re'] : []), ...(options.loop ? ['-stream_loop', '-1'] : []), '-i', options.url];
  const scale =
    resize === 'center-crop'
      ? `scale=${width}:${height}:force_original_aspect_ratio=increase:flags=area,crop=${width}:${height}`
      : `scale=${width}:${height}:flags=area`;
  return ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, '-an', '-vf', scale, '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'];
}

/** What ffmpeg's last words mean for the operator, with the fix. */
function explainFailure(url: string, stderr: string): string {
  const shown = redactUrl(url);
  if (/401|Unauthorized|authorization failed/i.test(stderr)) return `the camera at ${shown} refused the credentials: check the user and password in source.url`;
  if (/Connection refused|No route to host|timed out|Network is unreachable/i.test(stderr)) return `cannot reach ${shown}: is the camera on and the address right?`;
  if (/No such file or directory/i.test(stderr)) return `${shown} does not exist`;
  if (/Permission denied/i.test(stderr)) return `no permission to read ${shown}: add the agent's user to the video group`;
  const last = stderr.trim().split('\n').at(-1) ?? '';
  return `ffmpeg stopped reading ${shown}${last ? `: ${last.replaceAll(url, shown)}` : ''}`;
}

export class StreamSource extends ChildStreamSource {
  constructor(options: StreamSourceOptions) {
    const name = `stream ${redactUrl(options.url)}`;
    const kind = inputKind(options.url);
    if (kind === 'device' && !fs.existsSync(options.url)) {
      throw new SourceError(`no camera at ${options.url}: is it plugged in? (ls /dev/video* lists the ones there are; set source.url to one)`);
    }
    if (options.listen && !options.url.startsWith('rtsp://')) throw new SourceError(`source.listen waits for a camera to push RTSP: give an rtsp:// address to listen on, not ${redactUrl(options.url)}`);
    if (kind === 'file' && !fs.existsSync(options.url)) throw new SourceError(`video file ${options.url} does not exist: set source.url to a video file, a /dev/video device or a stream URL`);
    const { width, height } = options.target;
    super({
      name,
      program: 'ffmpeg',
      args: ffmpegArguments(options),
      env: options.env,
      splitter: new FixedSizeSplitter(width * height * 3),
      toFrame: (pixels, id, capturedAt) => ({ id, origin: name, bytes: Buffer.alloc(0), pixels, capturedAt }),
      // A file read to its end (and not looped) is a source that has ended.
      endsOnCleanExit: kind === 'file' && !options.loop,
      stallTimeoutMs: options.stallTimeoutMs,
      restartBackoff: options.restartBackoff,
      explainFailure: (stderr) => explainFailure(options.url, stderr),
      installHint: 'apt-get install ffmpeg',
    });
  }
}
