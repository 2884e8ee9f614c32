import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

/** A live stream: probe a second, not ffmpeg's default five, and drop corrupt packets rather than stall on them. */
function networkOptions(options: Pick<StreamSourceOptions, 'url' | 'listen'>): Array<[string, string]> {
  return [
    ...(options.url.startsWith('rtsp') ? [['rtsp_transport', 'tcp'] as [string, string], ...(options.listen ? [['rtsp_flags', 'listen'] as [string, string]] : [])] : []),
    ['fflags', 'nobuffer+discardcorrupt'],
    ['analyzeduration', '1000000'],
  ];
}

/** Whether a URL carries credentials (user:password@, ?token=...): those must not be on ffmpeg's command line. */
export function hasCredentials(url: string): boolean {
  return redactUrl(url) !== url;
}

/**
 * The ffconcat script that hands ffmpeg a URL with credentials through a file instead of its argv
 * (/proc/<pid>/cmdline, which `ps` shows every local user). The concat demuxer opens the one entry
 * with the same options (`option` lines) as the command line would give it; RTSP and HTTP(S) both
 * authenticate from the URL's user:password as usual.
 */
export function credentialScript(options: Pick<StreamSourceOptions, 'url' | 'listen'>): string {
  // Inside '...' nothing is escaped: a quote ends the string, is written escaped, and a new one starts.
  const quoted = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;
  return ['ffconcat version 1.0', `file ${quoted(options.url)}`, ...networkOptions(options).map(([key, value]) => `option ${key} ${quoted(value)}`), ''].join('\n');
}

/** Protocols the entry of a credential script may use (the concat demuxer allows only file, crypto and data unless told). */
const STREAM_PROTOCOLS = 'file,crypto,data,http,https,httpproxy,tcp,tls,udp,rtp,rtsp,rtsps,srtp,rtmp,rtmps,srt,hls';

/**
 * The ffmpeg arguments: input by kind, then scale (and crop) to the model input as raw RGB on stdout.
 * `credentialFile`: a network URL with credentials is read from this ffconcat file (credentialScript), not given as -i.
 */
export function ffmpegArguments(options: Pick<StreamSourceOptions, 'url' | 'target' | 'loop' | 'realtime' | 'listen'>, credentialFile?: string): string[] {
  const { width, height, resize } = options.target;
  const kind = inputKind(options.url);
  const network = networkOptions(options).flatMap(([key, value]) => [`-${key}`, value]);
  const input =
    kind === 'device'
      ? ['-f', 'v4l2', '-i', options.url]
      : kind === 'network'
        ? credentialFile !== undefined
          ? ['-f', 'concat', '-safe', '0', '-protocol_whitelist', STREAM_PROTOCOLS, '-fflags', 'nobuffer+discardcorrupt', '-i', credentialFile]
          : [...network, '-i', options.url]
        : [...(options.realtime ? ['-re'] : []), ...(options.loop ? ['-stream_loop', '-1'] : []), '-i', options.url];
  const scale =
    resize === 'center-crop'
      ? `scale=${width}:${height}:force_original_aspect_ratio=increase:flags=area,crop=${width}:${height}`
      : `scale=${width}:${height}:flags=area`;
  return ['-hide_banner', '-loglevel', 'error', '-nostdin', ...input, '-an', '-vf', scale, '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'];
}

/** Writes the credential script where only the agent's user can read it (a 0700 directory, a 0600 file). */
function writeCredentialFile(options: Pick<StreamSourceOptions, 'url' | 'listen'>): string {
  const dir = fs.mkdtempSync(path.join(process.env.XDG_RUNTIME_DIR ?? os.tmpdir(), 'edge-exit-stream-'));
  const file = path.join(dir, 'input.ffconcat');
  fs.writeFileSync(file, credentialScript(options), { mode: 0o600 });
  return file;
}

/** What ffmpeg's last words mean for the operator, with the fix. ffmpeg quotes the URL it failed on: every URL is redacted. */
function explainFailure(url: string, stderr: string): string {
  const shown = redactUrl(url);
  if (/401|Unauthorized|authorization failed/i.test(stderr)) return `the camera at ${shown} refused the credentials: check the user and password in source.url`;
  if (/Connection refused|No route to host|timed out|Network is unreachable/i.test(stderr)) return `cannot reach ${shown}: is the camera on and the address right?`;
  if (/No such file or directory/i.test(stderr)) return `${shown} does not exist`;
  if (/Permission denied/i.test(stderr)) return `no permission to read ${shown}: add the agent's user to the video group`;
  const last = stderr.trim().split('\n').at(-1) ?? '';
  return `ffmpeg stopped reading ${shown}${last ? `: ${redactUrl(last.replaceAll(url, shown))}` : ''}`;
}

export class StreamSource extends ChildStreamSource {
  /** The 0600 ffconcat file holding a URL with credentials, removed on close. */
  private readonly credentialFile: string | undefined;

  constructor(options: StreamSourceOptions) {
    const name = `stream ${redactUrl(options.url)}`;
    const kind = inputKind(options.url);
    if (kind === 'device' && !fs.existsSync(options.url)) {
      throw new SourceError(`no camera at ${options.url}: is it plugged in? (ls /dev/video* lists the ones there are; set source.url to one)`);
    }
    if (options.listen && !options.url.startsWith('rtsp://')) throw new SourceError(`source.listen waits for a camera to push RTSP: give an rtsp:// address to listen on, not ${redactUrl(options.url)}`);
    if (kind === 'file' && !fs.existsSync(options.url)) throw new SourceError(`video file ${options.url} does not exist: set source.url to a video file, a /dev/video device or a stream URL`);
    const { width, height } = options.target;
    const credentialFile = kind === 'network' && hasCredentials(options.url) ? writeCredentialFile(options) : undefined;
    try {
      super({
        name,
        program: 'ffmpeg',
        args: ffmpegArguments(options, credentialFile),
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
    } catch (error) {
      removeCredentialFile(credentialFile);
      throw error;
    }
    this.credentialFile = credentialFile;
  }

  override async close(): Promise<void> {
    await super.close();
    removeCredentialFile(this.credentialFile);
  }
}

function removeCredentialFile(file: string | undefined): void {
  if (file !== undefined) fs.rmSync(path.dirname(file), { recursive: true, force: true });
}
