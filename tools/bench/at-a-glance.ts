/**
 * The CPU-path issue's must-show table: one line per question (uint8 vs int8, 1 vs 2
 * threads, edge-exit vs onnxruntime-node, the loop before and after), each taken from
 * the cpu-path, peers and loop suites of the same `edge-exit bench` invocation.
 */
export interface GlanceRow {
  question: string;
  measured: string;
  /** The target and whether it holds, when there is one. */
  goal?: string;
  suite: 'cpu-path' | 'peers' | 'loop';
}

export const GLANCE_SUITES = ['cpu-path', 'peers', 'loop'] as const;

export function glanceTable(rows: readonly GlanceRow[]): string {
  return [
    '| question | measured in this run | goal | from section |',
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.question} | ${r.measured} | ${r.goal ?? '–'} | ${r.suite} |`),
  ].join('\n');
}

/** "met" or "missed", for a figure and the side of the bound it must be on. */
export function verdict(value: number, bound: number, must: 'at most' | 'at least'): string {
  return (must === 'at most' ? value <= bound : value >= bound) ? 'met' : 'missed';
}
