import fs from 'node:fs';
import path from 'node:path';

/**
 * The dependency rules of docs/architecture.md, checked on the source tree:
 * 1. What runs on a gateway (agent/, firmware-bridge/, server/) never imports tools/,
 *    except the CLI's lazy import() of a workstation command.
 * 2. agent/ never imports server/, except the CLI (which hands the embedded offload server to the app).
 * 3. firmware-bridge/ takes from agent/ only the logger, throttled warnings, the backoff schedule and the config-issues interface.
 * 4. Nothing outside test/ imports test/.
 */
export interface ImportEdge {
  from: string;
  to: string;
  dynamic: boolean;
}

const GATEWAY = ['agent/', 'firmware-bridge/', 'server/', 'common/', 'cli/'];
const BRIDGE_MAY_USE = new Set<string>();

function sourceFiles(root: string, dir: string): string[] {
  const full = path.join(root, dir);
  if (!fs.existsSync(full)) return [];
  return fs.readdirSync(full, { withFileTypes: true }).flatMap((entry) => {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'build' ? [] : sourceFiles(root, rel);
    return /\.(ts|js|mjs)$/.test(entry.name) ? [rel] : [];
  });
}

/** Every relative import in the tree, static and dynamic, as project paths (.js specifiers mapped to their .ts sources). */
export function importEdges(root: string): ImportEdge[] {
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+)'/g;
  return ['agent', 'cli', 'common', 'firmware-bridge', 'server', 'tools', 'bin'].flatMap((top) =>
    sourceFiles(root, top).flatMap((from) => {
      const text = fs.readFileSync(path.join(root, from), 'utf8');
      return [...text.matchAll(pattern)].map((match) => {
        let to = path.posix.normalize(path.posix.join(path.posix.dirname(from), match[1]!));
        if (to.endsWith('.js') && fs.existsSync(path.join(root, to.replace(/\.js$/, '.ts')))) to = to.replace(/\.js$/, '.ts');
        return { from, to, dynamic: match[0].includes('(') };
      });
    }),
  );
}

export function importViolations(root: string): string[] {
  const problems: string[] = [];
  for (const edge of importEdges(root)) {
    const at = `${edge.from} imports ${edge.to}${edge.dynamic ? ' (dynamic)' : ''}`;
    const gateway = GATEWAY.some((top) => edge.from.startsWith(top));
    const cli = edge.from.startsWith('cli/');
    if (gateway && edge.to.startsWith('tools/') && !(cli && edge.dynamic)) problems.push(`${at}: gateway code never imports the workstation side (a CLI command may import() it lazily)`);
    if (edge.from.startsWith('agent/') && (edge.to.startsWith('server/') || edge.to.startsWith('cli/'))) problems.push(`${at}: the agent does not depend on the server; the CLI hands it in`);
    if (edge.from.startsWith('firmware-bridge/') && edge.to.startsWith('agent/') && !BRIDGE_MAY_USE.has(edge.to)) problems.push(`${at}: firmware-bridge uses only ${[...BRIDGE_MAY_USE].join(' and ')} from agent/`);
    if (edge.to.startsWith('test/')) problems.push(`${at}: product code never imports tests`);
  }
  return problems;
}
