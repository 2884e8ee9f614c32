import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { importEdges, importViolations, type RuleId } from './helpers/import-rules.js';
import { temporaryDir, CIFAR_TEST } from './helpers/shared.js';
import { buildTinyAgentPackage } from './helpers/tiny-package.js';

test('the source tree keeps the dependency rules of docs/architecture.md', (t) => {
  t.deepEqual(
    importViolations(PROJECT_ROOT).map((v) => v.message),
    [],
  );
});

test('the import checker sees the tree through real resolution: .js to .ts, .mjs, lazy commands, the one exempt dynamic import', (t) => {
  const edges = importEdges(PROJECT_ROOT);
  const has = (from: string, to: string, extra: (e: (typeof edges)[number]) => boolean = () => true) => edges.some((e) => e.from === from && e.to === to && extra(e));
  t.true(edges.length > 500, `${edges.length} imports`);
  t.true(has('cli/main.ts', 'agent/config/agent-config.ts'), 'a .js specifier resolves to its .ts source');
  t.true(has('bin/edge-exit.js', 'cli/main.ts'));
  t.true(has('agent/preprocess/decode-worker.mjs', 'agent/preprocess/image-to-rgb.ts'));
  t.true(has('cli/main.ts', 'tools/cli/train.ts', (e) => e.form === 'import()' && e.lazy), 'the workstation commands are lazy import()s');
  t.true(edges.some((e) => e.from === 'firmware-bridge/gpio/pigpio-loader.ts' && !e.static));
});

/** Each rule's planted breach: the folder that imports and the project file it must not reach. */
const BREACHES: { rule: RuleId; dir: string; target: string }[] = [
  { rule: 1, dir: 'agent/planted', target: 'tools/train/trainer.ts' },
  { rule: 1, dir: 'common/planted', target: 'tools/train/trainer.ts' },
  { rule: 1, dir: 'server/planted', target: 'tools/train/trainer.ts' },
  // Not a workstation command, so even the lazy template import() is a breach.
  { rule: 1, dir: 'cli/planted', target: 'tools/train/trainer.ts' },
  { rule: 2, dir: 'agent/planted', target: 'server/offload-server.ts' },
  { rule: 2, dir: 'agent/planted', target: 'cli/main.ts' },
  { rule: 2, dir: 'server/planted', target: 'cli/main.ts' },
  { rule: 3, dir: 'firmware-bridge/planted', target: 'agent/store/log-store.ts' },
  { rule: 4, dir: 'common/planted', target: 'agent/config/paths.ts' },
  { rule: 5, dir: 'tools/planted', target: 'test/helpers/shared.ts' },
];

/** One import form each: the file's extension and its text for a specifier. */
const FORMS: { name: string; ext: string; text: (spec: string) => string }[] = [
  { name: 'double-quotes', ext: 'ts', text: (s) => `import { x } from "${s}";\n` },
  { name: 'single-quotes', ext: 'ts', text: (s) => `import { x } from '${s}';\n` },
  { name: 'side-effect', ext: 'mjs', text: (s) => `import '${s}';\n` },
  { name: 'export-from', ext: 'ts', text: (s) => `export { x } from '${s}';\n` },
  { name: 'export-star', ext: 'mts', text: (s) => `export * from "${s}";\n` },
  { name: 'type-import', ext: 'ts', text: (s) => `export type X = typeof import('${s}');\n` },
  { name: 'template-import', ext: 'ts', text: (s) => `export const load = () => import(\`${s}\`);\n` },
  { name: 'require', ext: 'cts', text: (s) => `const m = require('${s}');\nexport = m;\n` },
  { name: 'import-equals', ext: 'cts', text: (s) => `import m = require("${s}");\nexport = m;\n` },
  { name: 'create-require-bound', ext: 'mts', text: (s) => `import { createRequire as cr } from 'node:module';\nconst req = cr(import.meta.url);\nexport const m = req('${s}');\n` },
  { name: 'create-require-inline', ext: 'js', text: (s) => `import module from 'node:module';\nexport const m = module.createRequire(import.meta.url)("${s}");\n` },
  { name: 'cjs-file', ext: 'cjs', text: (s) => `module.exports = require(\`${s}\`);\n` },
];

function plantTree(): { root: string; write: (file: string, text: string) => void } {
  const root = temporaryDir('edge-exit-rules-');
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  };
  write('package.json', JSON.stringify({ type: 'module', imports: { '#tools/*': './tools/*' } }));
  for (const file of new Set(BREACHES.map((b) => b.target).concat('tools/cli/train.ts', 'common/log/logger.ts', 'firmware-bridge/types.ts'))) write(file, 'export const x = 1;\n');
  return { root, write };
}

/** The specifier from a file to a project .ts file, as NodeNext sources write it (.js). */
const specifier = (from: string, target: string) => path.posix.relative(path.posix.dirname(from), target).replace(/\.ts$/, '.js');

test('the import rules catch a planted breach of each rule in each import form, naming file, target, rule and fix', (t) => {
  const { root, write } = plantTree();
  const planted: { file: string; rule: RuleId; target: string }[] = [];
  for (const [n, breach] of BREACHES.entries()) {
    for (const form of FORMS) {
      const file = `${breach.dir}/${n}-${form.name}.${form.ext}`;
      write(file, form.text(specifier(file, breach.target)));
      planted.push({ file, rule: breach.rule, target: breach.target });
    }
  }
  const problems = importViolations(root, []);
  for (const { file, rule, target } of planted) {
    const found = problems.filter((p) => p.file === file);
    t.deepEqual(found.map((p) => [p.rule, p.target]), [[rule, target]], `${file} -> ${target} (rule ${rule}): ${found.map((p) => p.message).join('; ') || 'not reported'}`);
    const message = found[0]?.message ?? '';
    for (const part of [file, target, `rule ${rule}`, 'Fix: ']) t.true(message.includes(part), `"${message}" names ${part}`);
  }
  t.is(problems.length, planted.length, problems.map((p) => p.message).join('\n'));
});

test('the CLI reaches tools/ only by a lazy import() of tools/cli/*.ts; specifiers that cannot be resolved statically, or smuggle a project path through a package name, are caught', (t) => {
  const { root, write } = plantTree();
  fs.mkdirSync(path.join(root, 'node_modules'));
  fs.symlinkSync('../server', path.join(root, 'node_modules', 'sneaky'));
  write('server/offload-server.ts', 'export const x = 1;\n');
  // Allowed: a workstation command loaded when it runs, the bridge on common/, the workstation side on the gateway's, packages.
  write('cli/main.ts', "const commands = { train: () => import('../tools/cli/train.js') };\nexport async function bench() {\n  return import(`../tools/cli/train.js`);\n}\n");
  write('firmware-bridge/ok.ts', "import { x } from '../common/log/logger.js';\nimport type { x as y } from './types.js';\nimport fs from 'node:fs';\n");
  write('tools/ok.ts', "import { x } from '../agent/store/log-store.js';\nimport { y } from '../server/offload-server.js';\nimport z from 'zod';\n");
  write('firmware-bridge/exempt.ts', 'export const load = (moduleName: string) => import(moduleName);\n');
  const expected: Record<string, [RuleId, string]> = {
    'cli/static-command.ts': [1, 'tools/cli/train.ts'],
    'cli/top-level.ts': [1, 'tools/cli/train.ts'],
    'cli/not-a-command.ts': [1, 'tools/train/trainer.ts'],
    'cli/required.cts': [1, 'tools/cli/train.ts'],
    'agent/smuggled-imports-field.ts': [1, 'tools/train/trainer.ts'],
    'agent/smuggled-symlink.ts': [2, 'server/offload-server.ts'],
    'agent/absolute.ts': [1, 'tools/train/trainer.ts'],
    'agent/extensionless.ts': [1, 'tools/train/trainer'],
    'agent/template-with-substitution.ts': [6, 'an unresolvable `../tools/${name}.js`'],
    'tools/variable-require.cjs': [6, 'an unresolvable name'],
    'agent/gone.ts': [6, 'x'],
  };
  write('cli/static-command.ts', "import { x } from '../tools/cli/train.js';\n");
  write('cli/top-level.ts', "await import('../tools/cli/train.js');\n");
  write('cli/not-a-command.ts', "export const load = () => import('../tools/train/trainer.js');\n");
  write('cli/required.cts', "export = require('../tools/cli/train.js');\n");
  write('agent/smuggled-imports-field.ts', "import { x } from '#tools/train/trainer.js';\n");
  write('agent/smuggled-symlink.ts', "import { x } from 'sneaky/offload-server.js';\n");
  write('agent/absolute.ts', `export const load = () => import(${JSON.stringify(path.join(fs.realpathSync(root), 'tools/train/trainer.js'))});\n`);
  write('agent/extensionless.ts', "import { x } from '../tools/train/trainer';\n");
  write('agent/template-with-substitution.ts', 'export const load = (name: string) => import(`../tools/${name}.js`);\n');
  write('tools/variable-require.cjs', 'module.exports = (name) => require(name);\n');
  const exempt = [
    { file: 'firmware-bridge/exempt.ts', expression: 'moduleName', reason: 'a package named by the caller' },
    { file: 'agent/gone.ts', expression: 'x', reason: 'matches nothing: reported as stale' },
  ];
  const problems = importViolations(root, exempt);
  t.deepEqual(
    Object.fromEntries(problems.map((p) => [p.file, [p.rule, p.target]])),
    expected,
    problems.map((p) => p.message).join('\n'),
  );
  t.is(problems.length, Object.keys(expected).length);
  t.regex(problems.find((p) => p.file === 'cli/top-level.ts')!.message, /top level, not lazy.*Fix: .*inside the function/);
  t.regex(problems.find((p) => p.rule === 6 && p.file.startsWith('agent/template'))!.message, /DYNAMIC_EXEMPT/);
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
