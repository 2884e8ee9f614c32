import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { importViolations } from './helpers/import-rules.js';
import { temporaryDir, CIFAR_TEST } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

test('the source tree keeps the dependency rules of docs/architecture.md', (t) => {
  t.deepEqual(importViolations(PROJECT_ROOT), []);
});

test('the import rules catch a deliberate violation of each kind', (t) => {
  const root = temporaryDir('edge-exit-rules-');
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  };
  write('tools/train/trainer.ts', 'export const x = 1;\n');
  write('server/offload-server.ts', 'export const y = 1;\n');
  write('agent/store/log-store.ts', 'export const z = 1;\n');
  write('agent/pipeline/edge-agent.ts', "import { x } from '../../tools/train/trainer.js';\nimport { y } from '../../server/offload-server.js';\n");
  write('cli/main.ts', "const lazy = () => import('../tools/train/trainer.js');\nimport { x } from '../tools/train/trainer.js';\n");
  write('firmware-bridge/sysfs.ts', "import { z } from '../agent/store/log-store.js';\n");
  const problems = importViolations(root);
  t.is(problems.length, 4, problems.join('\n'));
  t.true(problems.some((p) => p.startsWith('agent/pipeline/edge-agent.ts imports tools/train/trainer.ts:')));
  t.true(problems.some((p) => p.startsWith('agent/pipeline/edge-agent.ts imports server/offload-server.ts:')));
  t.true(problems.some((p) => p.startsWith('cli/main.ts imports tools/train/trainer.ts:')), 'a static import from the CLI is a violation; its lazy import() is not');
  t.true(problems.some((p) => p.startsWith('firmware-bridge/sysfs.ts imports agent/store/log-store.ts:')));
});

test('`edge-exit run` loads neither tfjs nor anything under tools/ when its package is built', async (t) => {
  const { modelsDir, buildConfig } = await buildTinyAgentPackage();
  const dir = temporaryDir('edge-exit-modules-');
  const config = path.join(dir, 'agent.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      model: { package: 'tiny_cifar10', backend: 'xnnpack', threads: 1 },
      source: { kind: 'replay', dataset: CIFAR_TEST, loop: false, seed: 1 },
      logs: { path: path.join(dir, 'log.db') },
      mqtt: { embeddedPort: 20_000 + Math.floor(Math.random() * 20_000) },
    }),
  );
  t.truthy(buildConfig);
  const log = path.join(dir, 'modules.txt');
  const run = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'test/helpers/record-modules.mjs'), 'run', '-c', config, '--frames', '3'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, EDGE_EXIT_MODELS_DIR: modelsDir, EDGE_EXIT_MODULE_LOG: log },
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.is(run.status, 0, run.stderr);
  const loaded = [...new Set(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean))];
  const project = loaded.filter((url) => url.startsWith(`file://${PROJECT_ROOT}/`) && !url.includes('/node_modules/')).map((url) => url.slice(`file://${PROJECT_ROOT}/`.length));
  t.true(project.includes('agent/app/edge-exit-app.ts'), 'the recorder sees the app itself');
  t.deepEqual(project.filter((file) => file.startsWith('tools/')), []);
  t.deepEqual(loaded.filter((url) => /node_modules\/@tensorflow\/|node_modules\/tfjs-tflite-node\/dist/.test(url)), []);
  t.log(`${project.length} project modules, ${loaded.length - project.length} from node_modules; no tools/, no tfjs`);
});

test('no symbolic link is tracked: a worktree links node_modules, build outputs and packages, and a tracked link replaces the real directory on checkout', (t) => {
  const listed = spawnSync('git', ['ls-files', '-s'], { cwd: PROJECT_ROOT, encoding: 'utf8' });
  if (listed.status !== 0) return t.pass('not a git checkout');
  const links = listed.stdout.split('\n').filter((line) => line.startsWith('120000 '));
  t.deepEqual(links.map((line) => line.split('\t')[1]), []);
});
