import fs from 'node:fs';
import path from 'node:path';

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp']);

export interface LabelledImage {
  file: string;
  label: number;
}

export interface ImageFolder {
  root: string;
  classes: string[];
  samples: LabelledImage[];
}

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

/**
 * Reads an ImageFolder layout (<root>/<class>/<image>): classes are the
 * sub-folder names in sorted order, so label indices are stable across machines.
 */
export function readImageFolder(root: string): ImageFolder {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(root, { withFileTypes: true });
  } catch (error) {
    throw new DatasetError(`Cannot read dataset folder ${root}: ${(error as Error).message}. Give a folder with one sub-folder of images per class.`);
  }
  const classes = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  if (classes.length === 0) {
    throw new DatasetError(`Dataset folder ${root} has no class sub-folders. Expected <root>/<class name>/<images>.`);
  }
  const samples: LabelledImage[] = [];
  classes.forEach((name, label) => {
    const dir = path.join(root, name);
    const images = fs.readdirSync(dir).filter((file) => IMAGE_EXTENSIONS.has(path.extname(file).toLowerCase())).sort();
    if (images.length === 0) {
      throw new DatasetError(`Class folder ${dir} has no images (.jpg, .jpeg, .png, .webp, .bmp). Remove it or add images.`);
    }
    for (const image of images) samples.push({ file: path.join(dir, image), label });
  });
  return { root, classes, samples };
}

/** The first `perClass` images of every class, interleaved by class so any prefix is balanced. */
export function balancedSubset(folder: ImageFolder, perClass: number): LabelledImage[] {
  const byClass = folder.classes.map((_, label) => folder.samples.filter((s) => s.label === label).slice(0, perClass));
  const out: LabelledImage[] = [];
  for (let i = 0; i < perClass; i++) for (const list of byClass) {
    const sample = list[i];
    if (sample) out.push(sample);
  }
  return out;
}

/** Throws, naming the missing and the extra classes, unless an ImageFolder has exactly the classes expected (in order). */
export function checkSameClasses(expected: readonly string[], found: readonly string[], where: string): void {
  if (expected.length === found.length && expected.every((name, i) => name === found[i])) return;
  const missing = expected.filter((c) => !found.includes(c));
  const extra = found.filter((c) => !expected.includes(c));
  throw new DatasetError(
    `${where} has classes [${found.join(', ')}], but the model's are [${expected.join(', ')}]` +
      `${missing.length ? `; missing: ${missing.join(', ')}` : ''}${extra.length ? `; not in the model: ${extra.join(', ')}` : ''}. ` +
      'Use an ImageFolder with the same class sub-folders, or train a new package for these classes.',
  );
}
