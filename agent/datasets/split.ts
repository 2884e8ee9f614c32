import type { LabelledImage } from './image-folder.js';

/** A small seeded generator (mulberry32): the same seed gives the same split on every machine. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export interface TrainValidationSplit {
  train: LabelledImage[];
  validation: LabelledImage[];
}

/**
 * Carves a validation split out of a training set, the same fraction from every
 * class, and optionally caps the training images per class. The test split is
 * never an input here: choices are made on validation only.
 */
export function splitTrainValidation(
  samples: readonly LabelledImage[],
  options: { validationFraction: number; trainPerClass?: number; validationPerClass?: number; seed: number },
): TrainValidationSplit {
  if (!(options.validationFraction > 0 && options.validationFraction < 1)) {
    throw new RangeError(`validationFraction must be in (0, 1), got ${options.validationFraction}`);
  }
  const random = seededRandom(options.seed);
  const byClass = new Map<number, LabelledImage[]>();
  for (const sample of samples) {
    const list = byClass.get(sample.label) ?? [];
    list.push(sample);
    byClass.set(sample.label, list);
  }
  const train: LabelledImage[] = [];
  const validation: LabelledImage[] = [];
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const list = shuffled(byClass.get(label)!, random);
    const validationCount = Math.max(1, Math.round(list.length * options.validationFraction));
    validation.push(...list.slice(0, Math.min(validationCount, options.validationPerClass ?? validationCount)));
    train.push(...list.slice(validationCount, validationCount + (options.trainPerClass ?? list.length)));
  }
  // Interleave classes so that any prefix (and every training batch) is balanced.
  return { train: shuffled(train, random), validation: shuffled(validation, random) };
}
