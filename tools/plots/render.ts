/**
 * Shared rendering for the agent's plots: a Vega-Lite spec compiled to Vega
 * and drawn to a standalone SVG string in Node. The headless renderer needs no
 * canvas package; it estimates text widths instead of measuring them.
 */
import { View, parse, scheme } from 'vega';
import { compile, type Config, type TopLevelSpec } from 'vega-lite';

export const DEFAULT_WIDTH = 520;
export const DEFAULT_HEIGHT = 320;

/** Readable at report size; the same look for every plot. */
export const PLOT_CONFIG: Config = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  padding: 12,
  title: { fontSize: 15, anchor: 'start', offset: 12 },
  axis: { labelFontSize: 11, titleFontSize: 12, titlePadding: 10, grid: true, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 240, symbolSize: 90 },
  view: { stroke: '#ccc' },
};

/** The default categorical palette, read from Vega so that every plot assigns the same colors in the same order. */
export function categoryColors(count: number): string[] {
  const palette = scheme('tableau10') as string[];
  return Array.from({ length: count }, (_, i) => palette[i % palette.length]!);
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile({ ...spec, config: { ...PLOT_CONFIG, ...spec.config } }).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
