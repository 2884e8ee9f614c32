import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../agent/config/paths.js';
import { temporaryDir } from './shared.js';

/**
 * An `edge-exit` command run through record-modules.mjs: its exit status, everything
 * it printed, and the project files (relative to the root, node_modules left out) it loaded.
 */
export function recordedRun(args: string[], env: Record<string, string> = {}): { status: number | null; output: string; projectModules: string[] } {
  const log = path.join(temporaryDir('edge-exit-modules-'), 'modules.txt');
  const options = { cwd: PROJECT_ROOT, env: { ...process.env, ...env, EDGE_EXIT_MODULE_LOG: log }, encoding: 'utf8' as const, timeout: 120_000 };
  const run = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'test/helpers/record-modules.mjs'), ...args], options);
  const root = `file://${PROJECT_ROOT}/`;
  const loaded = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n') : [];
  const projectModules = [...new Set(loaded.filter((url) => url.startsWith(root) && !url.includes('/node_modules/')).map((url) => url.slice(root.length)))];
  return { status: run.status, output: run.stdout + run.stderr, projectModules };
}
