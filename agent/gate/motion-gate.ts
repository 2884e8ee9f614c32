import type { GateConfig } from '../config/agent-config.js';
import type { Region } from '../preprocess/crop.js';

/**
 * The motion gate: a cheap change detector on a small grayscale copy of each frame,
 * so that the model runs only when something in the scene changed. Its settings
 * follow Frigate's motion detector: a per-pixel threshold, a smallest changed area,
 * a lightning threshold (a change over most of the frame at once is light, not
 * motion) and optional contrast stretching. A running background absorbs slow change;
 * the mean brightness is compared apart from the pixels, so a lighting ramp (clouds,
 * dusk, auto exposure) moves no pixel past the threshold.
 *
 * A change over most of the frame at once (lights on, an IR-cut switch, a knocked camera,
 * the next image of a replay) is not "nothing moved": the picture is a new one, and the
 * label of the old one must not stand on it. The gate then says `settling` until the
 * picture holds still (exposure and white balance take a few frames), and `sceneChanged`
 * on the first settled frame, which the pipeline classifies fresh.
 */
/** What the detector reads of the gate's config section (documented there); zones may be left out. */
export type MotionGateSettings = Pick<GateConfig, 'threshold' | 'minArea' | 'lightningThreshold' | 'backgroundAlpha' | 'improveContrast' | 'width'> & { zones?: readonly Region[] };

export interface MotionReading {
  motion: boolean;
  /** Share of the frame that changed (after brightness compensation). */
  changedShare: number;
  /** The change was taken for lighting, and the background reset. */
  lighting: boolean;
  /**
   * A whole-scene change is settling (the frame of the change and those after it, until the
   * picture holds still): nothing to classify yet, and the old result is not this picture's.
   */
  settling: boolean;
  /** The first settled frame after a whole-scene change (or the first frame seen): classify it fresh, trusting nothing from before. */
  sceneChanged: boolean;
  /** Where the change is, in frame pixels, when there is motion. */
  region?: Region;
}

/** Frames in a row that must hold still against a whole-scene change before it is classified: auto exposure and white balance take a few. */
export const SCENE_SETTLE_FRAMES = 3;
/** A scene that never settles (every frame a new image) is classified anyway after this many frames: never left on the old label. */
export const SCENE_SETTLE_MAX_FRAMES = 10;
/** Mean brightness (0-255) a settled frame may differ from the one before: more is exposure still moving. */
const SCENE_SETTLE_BRIGHTNESS = 2;

export class MotionGate {
  /**
   * Whether the gate runs, for `gate.mode` over this source. Only a continuing scene is gated: on
   * unrelated images (a replay, a folder) every new image reads as a lighting change, and an old
   * label would be let stand on it. `on` there is refused with a warning, not an error: the agent
   * goes on classifying every frame, which is right for such a source, and a remote change of the
   * gate (applied after it is saved) never stops it.
   */
  static decide(mode: 'auto' | 'on' | 'off', source: { readonly name: string; readonly continuousScene: boolean } | undefined): { on: boolean; warning?: string } {
    if (mode === 'off') return { on: false };
    if (source?.continuousScene) return { on: true };
    if (mode === 'auto') return { on: false };
    return {
      on: false,
      warning: `gate.mode is "on", but ${source?.name ?? 'the source'} gives unrelated images, not one continuing scene: the motion gate would let one image's label stand on the next; not gating it (events are off too)`,
    };
  }

  private readonly factor: number;
  private readonly grayWidth: number;
  private readonly grayHeight: number;
  private readonly gray: Float32Array;
  private background: Float32Array | undefined;
  /** Sum of the background's cells, kept as it is learnt. */
  private backgroundSum = 0;
  /** 1 for grey cells inside a zone; undefined when the whole frame counts. */
  private zoneMask: Uint8Array | undefined;
  private zoneCells: number;
  /** While a whole-scene change settles: frames since it began, and frames in a row that held still. */
  private settle: { frames: number; still: number } | undefined;

  constructor(
    private settings: MotionGateSettings,
    private readonly frameWidth: number,
    private readonly frameHeight: number,
  ) {
    this.factor = Math.max(1, Math.floor(frameWidth / settings.width));
    this.grayWidth = Math.floor(frameWidth / this.factor);
    this.grayHeight = Math.floor(frameHeight / this.factor);
    this.gray = new Float32Array(this.grayWidth * this.grayHeight);
    this.zoneCells = this.gray.length;
    this.setZones(settings.zones);
  }

  private setZones(zones: readonly Region[] | undefined): void {
    if (!zones || zones.length === 0) {
      this.zoneMask = undefined;
      this.zoneCells = this.gray.length;
      return;
    }
    const mask = new Uint8Array(this.gray.length);
    for (const zone of zones) {
      const [x0, y0] = [Math.floor(zone.x * this.grayWidth), Math.floor(zone.y * this.grayHeight)];
      const [x1, y1] = [Math.ceil((zone.x + zone.width) * this.grayWidth), Math.ceil((zone.y + zone.height) * this.grayHeight)];
      for (let gy = Math.max(0, y0); gy < Math.min(this.grayHeight, y1); gy++) mask.fill(1, gy * this.grayWidth + Math.max(0, x0), gy * this.grayWidth + Math.min(this.grayWidth, x1));
    }
    this.zoneMask = mask;
    this.zoneCells = Math.max(1, mask.reduce((sum, cell) => sum + cell, 0));
  }

  /** New thresholds from the next frame on; the background is kept. */
  update(settings: MotionGateSettings): void {
    if (settings.width !== this.settings.width) throw new RangeError('the gate width is fixed at start-up');
    this.settings = settings;
    this.setZones(settings.zones);
  }

  /** Looks at one RGB frame (frameWidth x frameHeight x 3) and learns it into the background. */
  observe(rgb: Uint8Array): MotionReading {
    const grayMean = this.toGray(rgb) / this.gray.length;
    const gray = this.gray;
    if (!this.background) {
      // The first frame is the background: nothing is known to have moved, and the scene is new to the gate.
      this.background = Float32Array.from(gray);
      this.backgroundSum = sumOf(this.background);
      return { motion: false, changedShare: 0, lighting: false, settling: false, sceneChanged: true };
    }
    const background = this.background;
    const n = gray.length;
    const offset = grayMean - this.backgroundSum / n;
    const { threshold, minArea, lightningThreshold, backgroundAlpha } = this.settings;
    let changed = 0;
    let [left, top, right, bottom] = [Infinity, Infinity, -1, -1];
    const mask = this.zoneMask;
    const width = this.grayWidth;
    for (let gy = 0, i = 0; gy < this.grayHeight; gy++) {
      for (let gx = 0; gx < width; gx++, i++) {
        if ((mask && mask[i] === 0) || Math.abs(gray[i]! - background[i]! - offset) <= threshold) continue;
        changed++;
        if (gx < left) left = gx;
        if (gx > right) right = gx;
        if (gy < top) top = gy;
        if (gy > bottom) bottom = gy;
      }
    }
    // A share of the zones' area: a small zone is as sensitive as the whole frame.
    const changedShare = changed / this.zoneCells;
    const lighting = changedShare > lightningThreshold;
    if (lighting || this.settle) {
      // While a new picture settles the background is the latest frame, so each frame is compared with the one before it.
      background.set(gray);
      this.backgroundSum = sumOf(background);
      const settle = (this.settle ??= { frames: 0, still: 0 });
      settle.frames++;
      // Held still: no motion against the frame before, and the same mean brightness (auto exposure has stopped moving it).
      settle.still = !lighting && changedShare < minArea && Math.abs(offset) <= SCENE_SETTLE_BRIGHTNESS ? settle.still + 1 : 0;
      if (settle.still < SCENE_SETTLE_FRAMES && settle.frames <= SCENE_SETTLE_MAX_FRAMES) return { motion: false, changedShare, lighting, settling: true, sceneChanged: false };
      this.settle = undefined;
      return { motion: false, changedShare, lighting, settling: false, sceneChanged: true };
    }
    // The background learns the frame, and its sum (the next frame's brightness reference) is taken in the same pass.
    let sum = 0;
    for (let i = 0; i < n; i++) {
      background[i]! += backgroundAlpha * (gray[i]! - background[i]!);
      sum += background[i]!;
    }
    this.backgroundSum = sum;
    if (changedShare < minArea) return { motion: false, changedShare, lighting: false, settling: false, sceneChanged: false };
    const f = this.factor;
    return { motion: true, changedShare, lighting: false, settling: false, sceneChanged: false, region: { x: left * f, y: top * f, width: (right - left + 1) * f, height: (bottom - top + 1) * f } };
  }

  /** Block-averaged luma (BT.601 weights); averaging also evens out sensor noise. It runs on every frame: integer sums, one division a cell. */
  private toGray(rgb: Uint8Array): number {
    const { factor, grayWidth, grayHeight, frameWidth, gray } = this;
    if (rgb.length !== frameWidth * this.frameHeight * 3) throw new RangeError(`motion gate: expected ${frameWidth}x${this.frameHeight} RGB, got ${rgb.length} bytes`);
    const scale = 1 / (1000 * factor * factor);
    const rowStride = frameWidth * 3;
    const blockStride = factor * 3;
    let min = 255;
    let max = 0;
    let cell = 0;
    for (let gy = 0; gy < grayHeight; gy++) {
      const rowStart = gy * factor * rowStride;
      for (let gx = 0; gx < grayWidth; gx++, cell++) {
        let sum = 0;
        const p = rowStart + gx * blockStride;
        if (factor === 2) {
          // The usual case (a 128-pixel input on the default 64-wide gate), unrolled.
          const q = p + rowStride;
          sum =
            299 * (rgb[p]! + rgb[p + 3]! + rgb[q]! + rgb[q + 3]!) +
            587 * (rgb[p + 1]! + rgb[p + 4]! + rgb[q + 1]! + rgb[q + 4]!) +
            114 * (rgb[p + 2]! + rgb[p + 5]! + rgb[q + 2]! + rgb[q + 5]!);
        } else {
          for (let dy = 0; dy < factor; dy++) {
            let at = p + dy * rowStride;
            for (const end = at + blockStride; at < end; at += 3) sum += 299 * rgb[at]! + 587 * rgb[at + 1]! + 114 * rgb[at + 2]!;
          }
        }
        const value = sum * scale;
        gray[cell] = value;
        if (value < min) min = value;
        if (value > max) max = value;
      }
    }
    if (this.settings.improveContrast && max - min > 1) {
      const stretch = 255 / (max - min);
      for (let i = 0; i < gray.length; i++) gray[i] = (gray[i]! - min) * stretch;
    }
    return sumOf(gray);
  }
}

/** In index order, as the float32 cells are: the same sum wherever it is taken. */
function sumOf(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum;
}
