import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../agent/config/paths.js';

export const BENCHMARKS_FILE = path.join(PROJECT_ROOT, 'docs', 'benchmarks.md');

/**
 * Replaces one benchmark's section of docs/benchmarks.md (between its markers),
 * leaving the other benchmarks' latest results as they are.
 */
export function writeBenchSection(section: string, title: string, body: string, file = BENCHMARKS_FILE): void {
  const start = `<!-- bench:${section}:start -->`;
  const end = `<!-- bench:${section}:end -->`;
  const block = `${start}\n## ${title}\n\n${body.trim()}\n${end}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n\nLatest results of each benchmark; each section says how it was produced.\n';
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  text = from >= 0 && to > from ? text.slice(0, from) + block + text.slice(to + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}
