/** What an operating point's name means, in a sentence, for `edge-exit status` and people reading the log. */
export function describeOperatingPoint(name: string): string {
  if (name === 'full') return 'every frame runs to the final exit (the most accurate, the most costly)';
  if (name === 'balanced') return 'the cheapest point calibrated to stay within about a point of the full model, with a safety reserve';
  if (name === 'custom') return 'thresholds set by hand (policy.thresholds); the controller leaves the point alone while they are in force';
  const calibrated = /^(max-probability|entropy|patience)@(-?\d+(?:\.\d+)?)$/.exec(name);
  if (calibrated) {
    return `${calibrated[1]} thresholds calibrated to give up at most ${Math.abs(Number(calibrated[2])).toFixed(1)} points of validation accuracy against the full model, at the least cost`;
  }
  return 'a calibrated operating point of this package';
}
