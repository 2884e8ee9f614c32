import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { Command } from 'commander';
import { PROJECT_ROOT } from '../agent/config/paths.js';
import { TOPIC_TABLE, type TopicTableRow } from '../agent/mqtt/topics.js';
import { registerLogsCommand } from '../cli/commands/logs.js';
import { TOPIC_TABLE_END, TOPIC_TABLE_START } from '../tools/docs/topic-table.js';

/*
 * The docs against the code: the README's MQTT topic table against TOPIC_TABLE, its
 * `logs` views against the CLI's, and every repo path and link in the docs against the tree.
 */

const read = (file: string) => fs.readFileSync(path.join(PROJECT_ROOT, file), 'utf8');
const README = read('README.md');

/** The docs whose paths and links are checked. */
const DOCS = ['README.md', ...fs.readdirSync(path.join(PROJECT_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'tools/lab/RECIPES.md'];

/** Cells of a Markdown table row; `\|` is a pipe inside a cell. */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

type Row = Record<keyof TopicTableRow, string>;

function readmeTopicRows(): Row[] {
  const from = README.indexOf(TOPIC_TABLE_START);
  const to = README.indexOf(TOPIC_TABLE_END);
  if (from < 0 || to < from) throw new Error('README.md has lost its topic-table markers');
  const lines = README.slice(from + TOPIC_TABLE_START.length, to).trim().split('\n');
  return lines.slice(2).map((line) => {
    const [topic = '', direction = '', qos = '', retained = '', payload = ''] = cells(line);
    return { topic: topic.replace(/^`|`$/g, ''), direction, qos, retained, payload };
  });
}

const asRow = (row: TopicTableRow): Row => ({ topic: row.topic, direction: row.direction, qos: String(row.qos), retained: row.retained ? 'yes' : 'no', payload: row.payload });

test("the README's MQTT topic table is TOPIC_TABLE, row by row", (t) => {
  const inReadme = readmeTopicRows();
  const inCode = TOPIC_TABLE.map(asRow);
  const differences: string[] = [];
  for (let i = 0; i < Math.max(inReadme.length, inCode.length); i++) {
    const a = inReadme[i];
    const b = inCode[i];
    if (!a || !b) {
      differences.push(`row ${i + 1}: ${a ? `README only: ${a.topic}` : `TOPIC_TABLE only: ${b!.topic}`}`);
      continue;
    }
    for (const key of Object.keys(b) as Array<keyof Row>) {
      if (a[key] !== b[key]) differences.push(`row ${i + 1} (${b.topic}) ${key}:\n  README:      ${a[key]}\n  TOPIC_TABLE: ${b[key]}`);
    }
  }
  t.deepEqual(differences, [], `${differences.join('\n')}\nRegenerate with: node --import tsx tools/docs/topic-table.ts --write`);
});

test('the README names every view of `edge-exit logs`', (t) => {
  const logs = registerLogsCommand(new Command(), () => 'unused.db');
  const views = logs.registeredArguments[0]?.argChoices ?? [];
  t.true(views.length > 0);
  const row = README.split('\n').find((line) => line.startsWith('| `edge-exit logs '));
  t.truthy(row, 'the README commands table has no `edge-exit logs` row');
  const named = /`edge-exit logs <([^>]*)>/.exec(row!)?.[1]?.split('\\|') ?? [];
  t.deepEqual(views.filter((view) => !named.includes(view)), [], 'views the CLI has and the README does not name');
  t.deepEqual(named.filter((view) => !views.includes(view)), [], 'views the README names and the CLI does not have');
});

const TOP_LEVEL = ['agent', 'bin', 'cli', 'common', 'deploy', 'docs', 'firmware-bridge', 'models', 'server', 'test', 'tools'];

/** True when the path is a file, or a folder with a file somewhere in it (an emptied folder left by a move does not count). */
function exists(relative: string): boolean {
  const full = path.join(PROJECT_ROOT, relative);
  if (!fs.existsSync(full)) return false;
  if (!fs.statSync(full).isDirectory()) return true;
  return fs.readdirSync(full, { recursive: true, withFileTypes: true }).some((entry) => entry.isFile());
}

test('every repo path named in backticks in README.md and docs/ exists', (t) => {
  const missing: string[] = [];
  for (const doc of DOCS) {
    for (const [, code] of read(doc).matchAll(/`([^`\n]+)`/g)) {
      const candidate = code!.replace(/[.,;:)]+$/, '');
      if (!TOP_LEVEL.some((dir) => candidate.startsWith(`${dir}/`))) continue;
      // Placeholders, globs and commands are not paths.
      if (/[<>*{}\s…]|\.\.\./.test(candidate)) continue;
      if (!exists(candidate)) missing.push(`${doc}: ${candidate}`);
    }
  }
  t.deepEqual([...new Set(missing)], []);
});

test('docs/README.md lists every doc in docs/', (t) => {
  const index = read('docs/README.md');
  const entries = fs.readdirSync(path.join(PROJECT_ROOT, 'docs'), { withFileTypes: true }).filter((entry) => entry.name !== 'README.md');
  const unlisted = entries.map((entry) => (entry.isDirectory() ? `${entry.name}/` : entry.name)).filter((name) => !index.includes(`](${name})`));
  t.deepEqual(unlisted, []);
  t.true(README.includes('](docs/README.md)'), 'README.md does not link docs/README.md');
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const found = new Set<string>();
  for (const [, heading] of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    found.add(heading!.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-'));
  }
  return found;
}

test('every relative link in README.md and docs/ reaches a file, and its anchor a heading', (t) => {
  const broken: string[] = [];
  for (const doc of DOCS) {
    for (const [, target] of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const [file = '', anchor] = target!.split('#');
      const resolved = file === '' ? doc : path.normalize(path.join(path.dirname(doc), file));
      if (!exists(resolved)) {
        broken.push(`${doc}: ${target} (no ${resolved})`);
        continue;
      }
      if (anchor && resolved.endsWith('.md') && !anchors(read(resolved)).has(anchor)) broken.push(`${doc}: ${target} (no heading #${anchor} in ${resolved})`);
    }
  }
  t.deepEqual(broken, []);
});
