/** Validation accuracy of every exit after each training epoch: one line per exit. */
import type { TopLevelSpec } from 'vega-lite';
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, renderSvg } from './render.js';

export interface EpochAccuracy {
  epoch: number;
  /** Percent, one per exit, early to final. */
  validationAccuracy: number[];
}

export function trainingCurveSvg(history: EpochAccuracy[], exitNames: string[], title: string): Promise<string> {
  const rows = history.flatMap((h) => h.validationAccuracy.map((accuracy, i) => ({ epoch: h.epoch, accuracy, exit: exitNames[i] ?? `exit ${i}` })));
  const spec: TopLevelSpec = {
    title,
    width: DEFAULT_WIDTH,
    height: DEFAULT_HEIGHT,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
      y: { field: 'accuracy', type: 'quantitative', title: 'validation accuracy (%)', scale: { zero: false } },
      color: { field: 'exit', type: 'nominal', title: 'exit after', sort: null, legend: { orient: 'bottom', direction: 'horizontal' } },
    },
  };
  return renderSvg(spec);
}
