import path from 'node:path';
import { sourceSchema, type SourceConfig } from '../config/agent-config.js';
import { logger } from '../../common/log/logger.js';
import { onPath } from './child-stream.js';
import { ensureDemoVideo } from './demo-scene.js';
import { expandPath, PROJECT_ROOT, sharedDir } from '../config/paths.js';
import { CameraSource, type CameraCommand } from './camera-source.js';
import { findPiVideoCommand, PiCameraStream } from './pi-camera-stream.js';
import { FolderSource } from './folder-source.js';
import type { FrameSource } from './frame-source.js';
import { RaspistillSource } from './raspistill-source.js';
import { ReplaySource } from './replay-source.js';
import { StreamSource } from './stream-source.js';
import type { RgbTarget } from '../preprocess/image-to-rgb.js';

/** `target` is the model input: a stream source has ffmpeg scale to it. */
export async function createFrameSource(config: SourceConfig, target: RgbTarget, baseDir = PROJECT_ROOT): Promise<FrameSource> {
  switch (config.kind) {
    case 'replay':
      return new ReplaySource(expandPath(config.dataset, baseDir), { loop: config.loop, seed: config.seed, target });
    case 'folder':
      return new FolderSource(expandPath(config.path, baseDir), {
        pollMs: config.pollMs,
        doneDir: config.doneDir ? path.resolve(baseDir, config.doneDir) : undefined,
      });
    case 'camera': {
      const video = config.command === 'rpicam-vid' || config.command === 'libcamera-vid' ? config.command : config.command === 'auto' ? findPiVideoCommand() : undefined;
      if (video) return new PiCameraStream({ ...config, command: video, stallTimeoutMs: config.stallTimeoutS * 1000 });
      // The legacy stack: raspistill's timelapse keeps the camera open, where a still per frame would restart it.
      const stills = ['rpicam-still', 'libcamera-still'].some((command) => onPath(command));
      if (config.command === 'raspistill' || (config.command === 'auto' && !stills && onPath('raspistill'))) {
        return new RaspistillSource({ ...config, stallTimeoutMs: config.stallTimeoutS * 1000 });
      }
      return new CameraSource({ ...config, command: config.command === 'auto' ? 'auto' : (config.command as CameraCommand) });
    }
    case 'demo': {
      if (!onPath('ffmpeg')) {
        // A replay says it has no continuing scene, so the app neither gates it nor makes events of it.
        logger.warn('the demo camera needs ffmpeg (apt-get install ffmpeg); replaying the CIFAR-10 test split instead');
        return createFrameSource(sourceSchema.parse({ kind: 'replay' }), target, baseDir);
      }
      const url = await ensureDemoVideo(path.resolve(baseDir, config.dir), sharedDir());
      return new StreamSource({ url, target, loop: true, realtime: true, stallTimeoutMs: 10_000 });
    }
    case 'stream':
      return new StreamSource({
        url: /^[a-z][a-z0-9+.-]*:\/\//i.test(config.url) || config.url.startsWith('/dev/') ? config.url : expandPath(config.url, baseDir),
        target,
        loop: config.loop,
        realtime: config.realtime,
        listen: config.listen,
        stallTimeoutMs: config.stallTimeoutS * 1000,
      });
  }
}
