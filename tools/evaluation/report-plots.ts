import { accuracyCostPlotSvg } from '../plots/accuracy-cost-plot.js';
import { exitHistogramSvg } from '../plots/histogram-plot.js';
import type { EvaluationReport, PointEvaluation } from './evaluate.js';

const isStatic = (p: PointEvaluation) => /^exit-\d+$/.test(p.name);
const isCalibrated = (p: PointEvaluation) => p.name.includes('@');

/** The accuracy/cost curves (MACs and measured ms) and the exit histograms of an evaluation, as SVG files by name. */
export async function evaluationPlots(report: EvaluationReport): Promise<Record<string, string>> {
  const policies = [...new Set(report.points.filter(isCalibrated).map((p) => p.policy))];
  const curves = (cost: (p: PointEvaluation) => number) =>
    policies.map((policy) => ({
      policy,
      points: report.points
        .filter((p) => isCalibrated(p) && p.policy === policy)
        .map((p) => ({ label: p.name, accuracy: p.accuracy, cost: cost(p) }))
        .sort((a, b) => a.cost - b.cost),
    }));
  const staticExits = (cost: (p: PointEvaluation) => number) => report.points.filter(isStatic).map((p) => ({ label: p.name, accuracy: p.accuracy, cost: cost(p) }));
  const title = `${report.package}: test accuracy against cost (${report.images} images)`;
  const shown = report.points.filter((p) => p.name === 'full' || p.name === 'balanced' || p.name.endsWith('@-2.0'));
  return {
    'accuracy-vs-macs.svg': await accuracyCostPlotSvg(curves((p) => p.meanMacs / 1e6), { title, costLabel: 'mean MMACs per image', staticExits: staticExits((p) => p.meanMacs / 1e6) }),
    'accuracy-vs-latency.svg': await accuracyCostPlotSvg(curves((p) => p.meanLatencyMs), { title, costLabel: 'mean measured ms per image', staticExits: staticExits((p) => p.meanLatencyMs) }),
    'exit-histogram.svg': await exitHistogramSvg(
      shown.flatMap((p) => p.exitHistogram.map((count, exit) => ({ exit: `exit ${exit}`, count, series: p.name }))),
      `${report.package}: where test images stop`,
      { yLabel: 'images' },
    ),
  };
}
