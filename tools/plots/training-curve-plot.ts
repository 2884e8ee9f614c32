/** Validation accuracy of every exit after each training epoch: one line per exit. */
import type { TopLevelSpec } from 'vega-lite';
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, renderSvg } from './render.js';

export interface EpochAccuracy {
  epoch: number;
  /** Percent, one per exit, early to final. */
  validationAccuracy: number[];
  /** How many validation images this epoch read (recorded since `training.epochValidationImages`). */
  validationImages?: number;
}

/** The curve's title; says how many images each epoch read when that was a sample of the split. */
export function trainingCurveTitle(name: string, history: readonly EpochAccuracy[], validationSplitImages: number): string {
  const sampled = history.map((h) => h.validationImages).filter((count): count is number => count !== undefined && count < validationSplitImages);
  const title = `${name}: validation accuracy per exit while training`;
  return sampled.length === 0 ? title : `${title} (${Math.max(...sampled)} of ${validationSplitImages} validation images an epoch)`;
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
