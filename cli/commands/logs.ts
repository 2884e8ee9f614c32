import fs from 'node:fs';
import path from 'node:path';
import { Argument, Option, type Command } from 'commander';
import { LogReader, type InferenceFilter, type TimeRange } from '../../agent/store/log-store.js';

export const LOG_VIEWS = ['inferences', 'exits', 'energy', 'accuracy', 'controller', 'telemetry', 'config', 'events'] as const;
export type LogView = (typeof LOG_VIEWS)[number];
export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Options as commander hands them over: text, checked and converted by `parseLogsOptions`. */
export interface LogsCommandOptions {
  from?: string;
  to?: string;
  exit?: string;
  label?: string;
  offloaded?: string;
  limit?: string;
  db?: string;
  format?: string;
  /** events: write each event's snapshot here as <event id>.jpg. */
  snapshots?: string;
}

export interface LogsQuery extends InferenceFilter {
  /** Newest rows kept by the list views; undefined = all. */
  limit?: number;
}

/** Views over inferences, where the exit, label and offloaded filters mean something. */
const INFERENCE_VIEWS: ReadonlySet<LogView> = new Set(['inferences', 'exits', 'energy', 'accuracy']);
/** Views that list rows, where --limit applies. */
const LIST_VIEWS: ReadonlySet<LogView> = new Set(['inferences', 'controller', 'telemetry', 'config', 'events']);
export const DEFAULT_LIMIT = 100;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A time on the command line: relative to now (`-2h`, `-30m`, `-1.5d`, `-90s`,
 * units ms s m h d w), `now`, or an ISO 8601 date or date-time. As in
 * JavaScript, a date alone is UTC midnight and a date-time without an offset
 * is local time.
 */
export function parseTime(text: string, now = Date.now()): number {
  const trimmed = text.trim();
  if (trimmed === 'now') return now;
  const relative = /^-(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(trimmed);
  if (relative) return now - Number(relative[1]) * UNIT_MS[relative[2]!]!;
  // Date.parse takes almost anything ("2" is a year); insist on ISO's shape.
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(trimmed)) {
    const parsed = Date.parse(trimmed.replace(' ', 'T'));
    if (!Number.isNaN(parsed)) return parsed;
  }
  throw new Error(`cannot read the time "${text}": give an ISO date or time (2026-05-01, 2026-05-01T08:00Z) or a relative one (-2h, -30m, -7d)`);
}

function parseInteger(text: string, name: string, min: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) throw new Error(`--${name} must be a whole number of at least ${min}, got "${text}"`);
  return Number(text);
}

/** Checks the options against the view and converts them to a query. */
export function parseLogsOptions(view: LogView, options: LogsCommandOptions, now = Date.now()): LogsQuery {
  const query: LogsQuery = {};
  if (options.from !== undefined) query.from = parseTime(options.from, now);
  if (options.to !== undefined) query.to = parseTime(options.to, now);
  if (query.from !== undefined && query.to !== undefined && query.from >= query.to) {
    throw new Error(`--from (${new Date(query.from).toISOString()}) must be before --to (${new Date(query.to).toISOString()})`);
  }
  const inferenceOnly = (['exit', 'label', 'offloaded'] as const).filter((name) => options[name] !== undefined);
  if (inferenceOnly.length > 0 && !INFERENCE_VIEWS.has(view)) {
    throw new Error(`--${inferenceOnly[0]} filters inferences: use it with ${[...INFERENCE_VIEWS].join(', ')}, not ${view}`);
  }
  if (options.exit !== undefined) query.exit = parseInteger(options.exit, 'exit', 0);
  if (options.label !== undefined) query.label = options.label;
  if (options.offloaded !== undefined) {
    if (options.offloaded !== 'yes' && options.offloaded !== 'no') throw new Error(`--offloaded is yes or no, got "${options.offloaded}"`);
    query.offloaded = options.offloaded === 'yes';
  }
  if (options.limit !== undefined && !LIST_VIEWS.has(view)) {
    throw new Error(`--limit applies to the lists (${[...LIST_VIEWS].join(', ')}), not to ${view}`);
  }
  if (LIST_VIEWS.has(view)) {
    const limit = options.limit === undefined ? DEFAULT_LIMIT : parseInteger(options.limit, 'limit', 0);
    if (limit > 0) query.limit = limit;
  }
  return query;
}

export type Cell = string | number | boolean | null;
export type ColumnKind = 'time' | 'int' | 'ms' | 'fixed3' | 'percent' | 'energy' | 'text' | 'json';

interface Column<T> {
  header: string;
  kind: ColumnKind;
  value: (row: T) => unknown;
  /** Left out of the table, which must fit a terminal; CSV and JSON keep everything. */
  wide?: boolean;
}

/** A view as rows and typed columns, printable as a table or CSV, plus what --format json prints. */
export interface Rendered {
  headers: string[];
  kinds: ColumnKind[];
  /** Which columns the table shows. */
  inTable: boolean[];
  rows: Cell[][];
  json: unknown;
}

function build<T>(rows: readonly T[], columns: Array<Column<T>>, json: unknown): Rendered {
  return {
    headers: columns.map((column) => column.header),
    kinds: columns.map((column) => column.kind),
    inTable: columns.map((column) => !column.wide),
    rows: rows.map((row) =>
      columns.map((column) => {
        const value = column.value(row);
        if (value === undefined || value === null) return null;
        if (column.kind === 'json') return JSON.stringify(value);
        return value as Cell;
      }),
    ),
    json,
  };
}

const withTime = <T extends { ts: number }>(rows: readonly T[]) => rows.map((row) => ({ time: new Date(row.ts).toISOString(), ...row }));

/** Runs a view's query: the rows, typed columns and JSON it prints. */
export function buildView(reader: LogReader, view: LogView, query: LogsQuery): Rendered {
  const range: TimeRange = { from: query.from, to: query.to };
  switch (view) {
    case 'inferences': {
      const rows = reader.queryInferences(query);
      return build(
        rows,
        [
          { header: 'time', kind: 'time', value: (r) => r.ts },
          { header: 'source', kind: 'text', value: (r) => r.source },
          { header: 'frame', kind: 'text', value: (r) => r.frameId },
          { header: 'exit', kind: 'int', value: (r) => r.exit },
          { header: 'label', kind: 'text', value: (r) => r.label },
          { header: 'confidence', kind: 'fixed3', value: (r) => r.confidence },
          { header: 'true_label', kind: 'text', value: (r) => r.trueLabel },
          { header: 'policy', kind: 'text', value: (r) => r.policy, wide: true },
          { header: 'operating_point', kind: 'text', value: (r) => r.operatingPoint },
          { header: 'segment_ms', kind: 'json', value: (r) => r.segmentMs, wide: true },
          { header: 'total_ms', kind: 'ms', value: (r) => r.totalMs },
          { header: 'energy_j', kind: 'energy', value: (r) => r.energyJ },
          { header: 'battery_soc', kind: 'fixed3', value: (r) => r.batterySoc, wide: true },
          { header: 'temperature_c', kind: 'fixed3', value: (r) => r.temperatureC, wide: true },
          { header: 'offloaded', kind: 'text', value: (r) => r.offloaded },
          { header: 'request_id', kind: 'text', value: (r) => r.requestId, wide: true },
          { header: 'server_label', kind: 'text', value: (r) => r.serverLabel },
          { header: 'server_confidence', kind: 'fixed3', value: (r) => r.serverConfidence, wide: true },
          { header: 'server_ms', kind: 'ms', value: (r) => r.serverMs },
          { header: 'answered_at', kind: 'time', value: (r) => r.answeredAt, wide: true },
          { header: 'decided_locally', kind: 'text', value: (r) => r.decidedLocally },
        ],
        withTime(rows),
      );
    }
    case 'exits': {
      const bins = reader.exitHistogram(query);
      return build(
        bins,
        [
          { header: 'exit', kind: 'int', value: (b) => b.exit },
          { header: 'frames', kind: 'int', value: (b) => b.count },
          { header: 'share', kind: 'percent', value: (b) => b.fraction },
          { header: 'mean_total_ms', kind: 'ms', value: (b) => b.meanTotalMs },
          { header: 'mean_confidence', kind: 'fixed3', value: (b) => b.meanConfidence },
        ],
        bins,
      );
    }
    case 'energy': {
      const hours = reader.energyPerHour(query);
      return build(
        hours,
        [
          { header: 'hour', kind: 'time', value: (h) => h.hour },
          { header: 'frames', kind: 'int', value: (h) => h.frames },
          { header: 'energy_j', kind: 'energy', value: (h) => h.energyJ },
          { header: 'energy_per_frame_j', kind: 'energy', value: (h) => h.energyPerFrameJ },
        ],
        hours.map((h) => ({ time: new Date(h.hour).toISOString(), ...h })),
      );
    }
    case 'accuracy': {
      const report = reader.accuracy(query);
      const lines: Array<{ scope: string; n: number; correct: number; accuracy: number | null }> = [
        { scope: 'all frames (local answer)', ...report.overall },
        ...report.perExit.map((cell) => ({ scope: `exit ${cell.exit}`, n: cell.n, correct: cell.correct, accuracy: cell.accuracy })),
        { scope: 'offloaded and answered: local', ...report.offloaded.local },
        { scope: 'offloaded and answered: server', ...report.offloaded.server },
        { scope: 'final answer (server if in time)', ...report.final },
      ];
      return build(
        lines,
        [
          { header: 'scope', kind: 'text', value: (l) => l.scope },
          { header: 'frames', kind: 'int', value: (l) => l.n },
          { header: 'correct', kind: 'int', value: (l) => l.correct },
          { header: 'accuracy', kind: 'percent', value: (l) => l.accuracy },
        ],
        report,
      );
    }
    case 'controller': {
      const rows = reader.controllerTimeline(range, query.limit);
      return build(
        rows,
        [
          { header: 'time', kind: 'time', value: (r) => r.ts },
          { header: 'level', kind: 'text', value: (r) => r.level },
          { header: 'operating_point', kind: 'text', value: (r) => r.operatingPoint },
          { header: 'max_exit', kind: 'int', value: (r) => r.maxExit },
          { header: 'frame_rate', kind: 'fixed3', value: (r) => r.frameRate },
          { header: 'offload_allowed', kind: 'text', value: (r) => r.offloadAllowed },
          { header: 'reason', kind: 'text', value: (r) => r.reason },
          { header: 'inputs', kind: 'json', value: (r) => r.inputs },
        ],
        withTime(rows),
      );
    }
    case 'telemetry': {
      const rows = reader.telemetry(range, query.limit);
      return build(
        rows,
        [
          { header: 'time', kind: 'time', value: (r) => r.ts },
          { header: 'battery_soc', kind: 'fixed3', value: (r) => r.batterySoc },
          { header: 'voltage_v', kind: 'fixed3', value: (r) => r.voltageV },
          { header: 'current_a', kind: 'fixed3', value: (r) => r.currentA },
          { header: 'power_w', kind: 'fixed3', value: (r) => r.powerW },
          { header: 'charging', kind: 'text', value: (r) => r.charging },
          { header: 'temperature_c', kind: 'fixed3', value: (r) => r.temperatureC },
          { header: 'frames_per_s', kind: 'fixed3', value: (r) => r.framesPerS },
          { header: 'extra', kind: 'json', value: (r) => r.extra },
        ],
        withTime(rows),
      );
    }
    case 'config': {
      const rows = reader.configChanges(range, query.limit);
      return build(
        rows,
        [
          { header: 'time', kind: 'time', value: (r) => r.ts },
          { header: 'source', kind: 'text', value: (r) => r.source },
          { header: 'version', kind: 'text', value: (r) => r.version },
          { header: 'accepted', kind: 'text', value: (r) => r.accepted },
          { header: 'reason', kind: 'text', value: (r) => r.reason },
          { header: 'diff', kind: 'json', value: (r) => r.diff },
        ],
        withTime(rows),
      );
    }
    case 'events': {
      const rows = reader.events(range, query.limit);
      return build(
        rows,
        [
          { header: 'start', kind: 'time', value: (r) => r.start },
          { header: 'end', kind: 'time', value: (r) => r.end },
          { header: 'event', kind: 'text', value: (r) => r.eventId, wide: true },
          { header: 'label', kind: 'text', value: (r) => r.label },
          { header: 'confidence', kind: 'fixed3', value: (r) => r.confidence },
          { header: 'frames', kind: 'int', value: (r) => r.frames },
          { header: 'exits', kind: 'json', value: (r) => r.exits },
          { header: 'snapshot_bytes', kind: 'int', value: (r) => r.snapshot?.length },
        ],
        rows.map(({ snapshot, ...row }) => ({ time: new Date(row.start).toISOString(), ...row, snapshotBytes: snapshot?.length ?? null })),
      );
    }
  }
}

/** A cell for people: times in ISO (UTC), numbers rounded, booleans as yes/no, absent as "-". */
function displayCell(value: Cell, kind: ColumnKind): string {
  if (value === null) return '-';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') {
    switch (kind) {
      case 'time':
        return new Date(value).toISOString();
      case 'ms':
        return value.toFixed(2);
      case 'fixed3':
        return value.toFixed(3);
      case 'percent':
        return `${(value * 100).toFixed(1)}%`;
      case 'energy':
        return value.toPrecision(4);
      default:
        return String(value);
    }
  }
  return value;
}

const MAX_TABLE_CELL = 60;

function tableText(text: string): string {
  // One row per line whatever the data holds; long JSON is cut, not wrapped.
  const flat = text.replace(/\r\n|\r|\n/g, '\\n').replace(/[\u0000-\u001f\u007f]/g, '?');
  return flat.length > MAX_TABLE_CELL ? `${flat.slice(0, MAX_TABLE_CELL - 1)}…` : flat;
}

const NUMERIC_KINDS: ReadonlySet<ColumnKind> = new Set(['int', 'ms', 'fixed3', 'percent', 'energy']);

export function formatTable(rendered: Rendered): string {
  const shown = rendered.headers.flatMap((_, i) => (rendered.inTable[i] ? [i] : []));
  const kinds = shown.map((i) => rendered.kinds[i]!);
  const headers = shown.map((i) => rendered.headers[i]!);
  const cells = rendered.rows.map((row) => shown.map((i, k) => tableText(displayCell(row[i]!, kinds[k]!))));
  const widths = headers.map((header, k) => Math.max(header.length, ...cells.map((row) => row[k]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, k) => (NUMERIC_KINDS.has(kinds[k]!) ? value.padStart(widths[k]!) : value.padEnd(widths[k]!)))
      .join('  ')
      .trimEnd();
  const out = [line(headers), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line)];
  if (cells.length === 0) out.push('(no rows)');
  return `${out.join('\n')}\n`;
}

/** RFC 4180: a field with a comma, quote, CR, LF or edge spaces is quoted, quotes doubled. */
export function csvField(value: Cell, kind: ColumnKind = 'text'): string {
  if (value === null) return '';
  const text = typeof value === 'number' && kind === 'time' ? new Date(value).toISOString() : String(value);
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** CSV with a header row and CRLF line ends (RFC 4180); numbers at full precision, times in ISO (UTC). */
export function formatCsv(rendered: Rendered): string {
  const lines = [rendered.headers.map((header) => csvField(header)).join(',')];
  for (const row of rendered.rows) lines.push(row.map((value, i) => csvField(value, rendered.kinds[i])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function formatJson(rendered: Rendered): string {
  return `${JSON.stringify(rendered.json, null, 2)}\n`;
}

export function renderLogs(reader: LogReader, view: LogView, query: LogsQuery, format: OutputFormat): string {
  const rendered = buildView(reader, view, query);
  if (format === 'json') return formatJson(rendered);
  if (format === 'csv') return formatCsv(rendered);
  return formatTable(rendered);
}

/** The whole command: open the file read-only, run the view, return what to print. */
export function logsCommand(view: string, options: LogsCommandOptions, defaultDbPath: () => string, now = Date.now()): string {
  if (!(LOG_VIEWS as readonly string[]).includes(view)) throw new Error(`unknown view "${view}": one of ${LOG_VIEWS.join(', ')}`);
  const format = (options.format ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new Error(`--format is one of ${OUTPUT_FORMATS.join(', ')}, got "${options.format}"`);
  const query = parseLogsOptions(view as LogView, options, now);
  const file = options.db ?? defaultDbPath();
  if (!fs.existsSync(file)) throw new Error(`no log database at ${file}: the agent has not run yet, or give --db`);
  if (options.snapshots !== undefined && view !== 'events') throw new Error(`--snapshots writes the snapshots of events: use it with the events view, not ${view}`);
  const reader = LogReader.open(file);
  try {
    const printed = renderLogs(reader, view as LogView, query, format);
    if (options.snapshots === undefined) return printed;
    fs.mkdirSync(options.snapshots, { recursive: true });
    const written = reader.events({ from: query.from, to: query.to }, query.limit).filter((event) => event.snapshot !== null);
    for (const event of written) fs.writeFileSync(path.join(options.snapshots, `${event.eventId}.jpg`), event.snapshot!);
    return `${printed}${format === 'table' ? `${written.length} snapshot(s) written to ${options.snapshots}\n` : ''}`;
  } finally {
    reader.close();
  }
}

export function registerLogsCommand(program: Command, defaultDbPath: () => string): Command {
  return program
    .command('logs')
    .description("show the agent's local logs: inferences, exit histogram, energy per hour, accuracy, controller timeline, telemetry, config changes, events")
    .addArgument(new Argument('[view]', 'what to show').choices(LOG_VIEWS).default('inferences'))
    .option('--from <time>', 'from this time: ISO (2026-05-01T08:00Z) or relative (-2h, -30m, -7d)')
    .option('--to <time>', 'up to this time (excluded), same forms as --from')
    .option('--exit <n>', 'only frames that left at this exit (inference views)')
    .option('--label <label>', 'only frames with this predicted label (inference views)')
    .addOption(new Option('--offloaded <yes|no>', 'only offloaded frames, or only local ones (inference views)').choices(['yes', 'no']))
    .option('--limit <n>', `newest rows to list, 0 for all (list views; default ${DEFAULT_LIMIT})`)
    .option('--db <file>', "log database (default: the agent's)")
    .option('--snapshots <dir>', 'events: write the best frame of each event there, as <event id>.jpg')
    .addOption(new Option('--format <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .action((view: string, options: LogsCommandOptions) => {
      process.stdout.write(logsCommand(view, options, defaultDbPath));
    });
}
