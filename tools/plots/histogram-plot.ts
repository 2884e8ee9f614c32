/** Where samples stopped: one bar per exit, grouped side by side when the bars belong to several series. */
import type { TopLevelSpec } from 'vega-lite';
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, renderSvg } from './render.js';

export interface ExitHistogramBar {
  exit: string;
  count: number;
  series?: string;
}

export interface ExitHistogramOptions {
  yLabel?: string;
  width?: number;
  height?: number;
}

export function exitHistogramSvg(bars: ExitHistogramBar[], title: string, options: ExitHistogramOptions = {}): Promise<string> {
  const grouped = bars.some((bar) => bar.series !== undefined);
  const rows = bars.map((bar) => ({ exit: bar.exit, count: bar.count, series: bar.series ?? '' }));
  // Exits keep the order they were given in (exit-10 would sort before exit-2).
  const x = { field: 'exit', type: 'nominal', title: 'exit', sort: null, axis: { labelAngle: 0 } } as const;
  const offset = grouped ? ({ xOffset: { field: 'series', type: 'nominal', sort: null } } as const) : {};
  const color = grouped
    ? ({ color: { field: 'series', type: 'nominal', title: null, sort: null, legend: { orient: 'bottom', direction: 'horizontal' } } } as const)
    : {};
  const spec: TopLevelSpec = {
    title,
    width: options.width ?? DEFAULT_WIDTH,
    height: options.height ?? DEFAULT_HEIGHT,
    data: { values: rows },
    encoding: { x, ...offset },
    layer: [
      {
        mark: { type: 'bar', ...(grouped ? {} : { color: '#4c78a8' }) },
        encoding: { y: { field: 'count', type: 'quantitative', title: options.yLabel ?? 'samples' }, ...color },
      },
      {
        mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: 10 },
        encoding: { y: { field: 'count', type: 'quantitative' }, text: { field: 'count', type: 'quantitative' } },
      },
    ],
  };
  return renderSvg(spec);
}
