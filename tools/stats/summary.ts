/** The q-quantile (0..1) of values by linear interpolation between order statistics. */
export function quantileOf(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
}

export function medianOf(values: readonly number[]): number {
  return quantileOf(values, 0.5);
}

export function meanOf(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

export interface TimingSummary {
  medianMs: number;
  p95Ms: number;
  meanMs: number;
  imagesPerSecond: number;
}

export function summarizeTimings(ms: readonly number[]): TimingSummary {
  const meanMs = meanOf(ms);
  return { medianMs: medianOf(ms), p95Ms: quantileOf(ms, 0.95), meanMs, imagesPerSecond: 1000 / meanMs };
}
