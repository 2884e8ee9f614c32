/** Values over time, one line per series: battery %, temperature, the operating point in use. */
import type { TopLevelSpec } from 'vega-lite';
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, renderSvg } from './render.js';

export interface TimelineRow {
  t: number;
  value: number;
  series: string;
}

export interface TimelineOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** step-after for quantities that hold until the next sample, like the operating point. */
  interpolate?: 'linear' | 'step-after';
  /** One panel per series with its own y scale, for series in different units. */
  separatePanels?: boolean;
  width?: number;
  height?: number;
}

export function timelineSvg(rows: TimelineRow[], options: TimelineOptions): Promise<string> {
  // Series in order of first appearance, for colors and panels alike (not alphabetical).
  const seriesOrder = [...new Set(rows.map((row) => row.series))];
  const x = { field: 't', type: 'quantitative', title: options.xLabel, scale: { nice: false } } as const;
  const y = { field: 'value', type: 'quantitative', title: options.yLabel, scale: { zero: false } } as const;
  const color = { field: 'series', type: 'nominal', title: null, sort: seriesOrder, legend: { orient: 'bottom', direction: 'horizontal' } } as const;
  const mark = { type: 'line', strokeWidth: 2, interpolate: options.interpolate ?? 'linear' } as const;
  const width = options.width ?? DEFAULT_WIDTH;
  const height = options.height ?? DEFAULT_HEIGHT;
  const spec: TopLevelSpec = options.separatePanels
    ? {
        title: options.title,
        data: { values: rows },
        facet: {
          row: {
            field: 'series',
            type: 'nominal',
            title: null,
            sort: seriesOrder,
            header: { labelOrient: 'top', labelAnchor: 'start', labelAngle: 0, labelFontSize: 12, labelFontWeight: 'bold' },
          },
        },
        spec: {
          width,
          height: Math.max(80, Math.round(height / 2)),
          mark,
          encoding: { x, y, color: { ...color, legend: null } },
        },
        resolve: { scale: { y: 'independent' } },
      }
    : { title: options.title, width, height, data: { values: rows }, mark, encoding: { x, y, color } };
  return renderSvg(spec);
}
