// Runs the CLI as bin/edge-exit.js does, with a recorder of every module it loads
// (ES modules through a resolve hook registered after tsx's, CommonJS ones from the require cache at exit).
import fs from 'node:fs';
import { createRequire, register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

const out = process.env.EDGE_EXIT_MODULE_LOG;
registerTsx();
register('./module-recorder-hooks.mjs', import.meta.url, { data: { out } });
process.on('exit', () => {
  const required = Object.keys(createRequire(import.meta.url).cache).map((file) => `file://${file}`);
  fs.appendFileSync(out, `${required.join('\n')}\n`);
});
await import('../../cli/main.ts');
