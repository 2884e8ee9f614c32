// Runs tools/train/train_multi_exit.py under a Python that has PyTorch, and
// turns its JSON-lines stdout into progress callbacks.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { PROJECT_ROOT } from '../../agent/config/paths.js';

export const TRAINER_SCRIPT = path.join(PROJECT_ROOT, 'tools', 'train', 'train_multi_exit.py');
const INSTALL_HINT = 'On Debian or Raspberry Pi OS: `apt-get install python3-torch python3-numpy`, or point EDGE_EXIT_PYTHON (or "python" in the training config) at a Python that has PyTorch.';

export class TrainerError extends Error {
  override name = 'TrainerError';
}

/** Debian's PyTorch lives under /usr/bin/python3, which is often not the first python3 on PATH. */
export function choosePython(configured: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (configured) return configured;
  if (env.EDGE_EXIT_PYTHON) return env.EDGE_EXIT_PYTHON;
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** Fails with what to install when the interpreter or one of the modules is missing. */
export function checkPythonDependencies(python: string, modules = ['numpy', 'torch']): void {
  const probe = `import importlib, json, sys\nmissing = []\nfor m in ${JSON.stringify(modules)}:\n  try: importlib.import_module(m)\n  except ImportError: missing.append(m)\nprint(json.dumps(missing))`;
  const result = spawnSync(python, ['-c', probe], { encoding: 'utf8' });
  if (result.error) throw new TrainerError(`Cannot run ${python}: ${result.error.message}. ${INSTALL_HINT}`);
  let missing: string[] = [];
  try {
    missing = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '[]') as string[];
  } catch {
    throw new TrainerError(`${python} could not check its modules (exit ${result.status}): ${result.stderr.trim().slice(-300)}. ${INSTALL_HINT}`);
  }
  if (missing.length > 0) throw new TrainerError(`${python} lacks the Python module(s) ${missing.join(', ')} that training needs. ${INSTALL_HINT}`);
}

export interface TrainerEvent {
  event: string;
  [field: string]: unknown;
}

/**
 * Resolves with the trainer's final "done" event; stderr is kept for the error message.
 * `env` reaches the trainer (EDGE_EXIT_CPUINFO points it at another /proc/cpuinfo).
 */
export function runTrainer(
  python: string,
  workDir: string,
  onEvent: (event: TrainerEvent) => void,
  signal?: AbortSignal,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TrainerEvent> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [TRAINER_SCRIPT, '--work', workDir], { stdio: ['ignore', 'pipe', 'pipe'], signal, env });
    let done: TrainerEvent | undefined;
    let stderrTail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString()).slice(-4000);
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let event: TrainerEvent;
      try {
        event = JSON.parse(line) as TrainerEvent;
      } catch {
        return;
      }
      if (event.event === 'done') done = event;
      onEvent(event);
    });
    child.on('error', (error) => {
      if (error.name === 'AbortError') reject(new TrainerError(`Training was interrupted; its last checkpoint is in ${workDir}. Run the same command again to resume.`));
      else reject(new TrainerError(`Cannot start ${python}: ${error.message}. ${INSTALL_HINT}`));
    });
    child.on('close', (code, signalName) => {
      if (code === 0 && done) return resolve(done);
      if (signalName) return reject(new TrainerError(`Training stopped by ${signalName}; its last checkpoint is in ${workDir}. Run the same command again to resume.`));
      reject(new TrainerError(`The trainer exited with code ${code}:\n${stderrTail.trim()}\nIts last checkpoint (if any) is in ${workDir}; fix the cause and run the same command again to resume.`));
    });
  });
}

export interface AugmentationPreview {
  /** The first training images as the recipe augments them, uint8 NCHW. */
  pixels: Uint8Array;
  /** With CutMix: each image's partner in the batch (null if the batch stayed unmixed) and the area its own label keeps. */
  cutMix: { partner: number[] | null; keptArea: number } | null;
}

/**
 * The first `count` training images of a prepared work directory, augmented
 * as in training and seeded by the run's seed. What the network is shown,
 * for checking an augmentation recipe by eye or by test.
 */
export function previewAugmentation(python: string, workDir: string, count: number): AugmentationPreview {
  const result = spawnSync(python, [TRAINER_SCRIPT, '--work', workDir, '--preview-augmentation', String(count)], { encoding: 'utf8' });
  if (result.status !== 0) throw new TrainerError(`The augmentation preview in ${workDir} failed: ${result.stderr || result.error?.message}`);
  const { cutMix } = JSON.parse(fs.readFileSync(path.join(workDir, 'augmentation-preview.json'), 'utf8')) as Pick<AugmentationPreview, 'cutMix'>;
  return { pixels: new Uint8Array(fs.readFileSync(path.join(workDir, 'augmentation-preview.u8'))), cutMix };
}
