/** Accuracy against expected cost: one curve per exit policy, with the static exits as the baseline. */
import type { TopLevelSpec } from 'vega-lite';
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, categoryColors, renderSvg } from './render.js';

export interface AccuracyCostPoint {
  label: string;
  /** Fraction correct, 0..1. */
  accuracy: number;
  cost: number;
}

export interface AccuracyCostSeries {
  policy: string;
  points: AccuracyCostPoint[];
}

export interface AccuracyCostPlotOptions {
  costLabel: string;
  title: string;
  /** "Always stop at exit i" points, drawn as a labelled dashed baseline. */
  staticExits?: AccuracyCostPoint[];
  staticSeriesName?: string;
  width?: number;
  height?: number;
}

const STATIC_COLOR = '#7f7f7f';

export function accuracyCostPlotSvg(series: AccuracyCostSeries[], options: AccuracyCostPlotOptions): Promise<string> {
  const staticName = options.staticSeriesName ?? 'static exits';
  const staticExits = options.staticExits ?? [];
  const rows = [
    ...series.flatMap((s) => s.points.map((point) => ({ ...point, series: s.policy, kind: 'policy' }))),
    ...staticExits.map((point) => ({ ...point, series: staticName, kind: 'static' })),
  ];
  const domain = [...series.map((s) => s.policy), ...(staticExits.length > 0 ? [staticName] : [])];
  const range = [...categoryColors(series.length), STATIC_COLOR];
  const x = { field: 'cost', type: 'quantitative', title: options.costLabel, scale: { zero: false, nice: true } } as const;
  const y = { field: 'accuracy', type: 'quantitative', title: 'accuracy', axis: { format: '.1%' }, scale: { zero: false, nice: true } } as const;
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain, range }, legend: { orient: 'bottom', direction: 'horizontal' } } as const;
  const isStatic = "datum.kind === 'static'";
  const spec: TopLevelSpec = {
    title: options.title,
    width: options.width ?? DEFAULT_WIDTH,
    height: options.height ?? DEFAULT_HEIGHT,
    data: { values: rows },
    encoding: { x, y, color },
    layer: [
      {
        transform: [{ filter: `!(${isStatic})` }],
        mark: { type: 'line', strokeWidth: 2, point: { filled: true, size: 55 } },
        encoding: { order: { field: 'cost', type: 'quantitative' } },
      },
      {
        transform: [{ filter: isStatic }],
        mark: { type: 'line', strokeDash: [5, 4], strokeWidth: 1.5, point: { shape: 'square', filled: true, size: 60 } },
        encoding: { order: { field: 'cost', type: 'quantitative' } },
      },
      {
        transform: [{ filter: isStatic }],
        mark: { type: 'text', align: 'left', dx: 7, dy: 9, fontSize: 10, color: STATIC_COLOR },
        encoding: { text: { field: 'label' }, color: { value: STATIC_COLOR } },
      },
    ],
  };
  return renderSvg(spec);
}
