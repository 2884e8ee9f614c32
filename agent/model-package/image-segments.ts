// Segments that read the image rather than the previous segment's output. The
// chain to the final exit starts at the last of them; any before it form a
// low-resolution glance network whose exit answers the easy frames for a
// fraction of the full model's cost.
import type { Manifest, SegmentEntry } from './manifest.js';

export const IMAGE_BOUNDARY = 'input';

type Segments = { segments: readonly Pick<SegmentEntry, 'from'>[] };

export function readsImage(segment: Pick<SegmentEntry, 'from'>): boolean {
  return segment.from === IMAGE_BOUNDARY;
}

/**
 * A branch ends where nothing downstream reads its output but its own exit: the
 * next segment starts again from the image. When that exit is off, the segment
 * need not run at all.
 */
export function isBranchSegment(manifest: Segments, index: number): boolean {
  const next = manifest.segments[index + 1];
  return next !== undefined && readsImage(next);
}

/** The segment that starts the chain to the final exit: the last one that reads the image. */
export function mainChainStart(manifest: Segments): number {
  return manifest.segments.findLastIndex(readsImage);
}

/** Whole-number factor by which an image segment reads the package input smaller; undefined if none fits. */
export function imageScaleFactor(input: Pick<Manifest['input'], 'width' | 'height'>, segment: Pick<SegmentEntry, 'input'>): number | undefined {
  const [, height, width] = segment.input.shape;
  if (!height || !width || input.width % width !== 0 || input.height % height !== 0) return undefined;
  const factor = input.width / width;
  return input.height / height === factor ? factor : undefined;
}

export function imageSegmentProblems(manifest: Pick<Manifest, 'input' | 'segments'>, index: number): string[] {
  const segment = manifest.segments[index]!;
  const { shape, dtype } = segment.input;
  if (dtype !== 'uint8' || shape.length !== 4 || shape[0] !== 1 || shape[3] !== 3) {
    return [`segment ${index} reads the image, so its input must be uint8 [1, height, width, 3], not ${dtype} [${shape.join(', ')}]`];
  }
  if (imageScaleFactor(manifest.input, segment) === undefined) {
    return [`segment ${index} reads the image at ${shape[2]}x${shape[1]}, which is not the package input ${manifest.input.width}x${manifest.input.height} divided by a whole number`];
  }
  return [];
}
