import test, { type ExecutionContext } from 'ava';
import { accuracyCostPlotSvg } from '../tools/plots/accuracy-cost-plot.js';
import { exitHistogramSvg } from '../tools/plots/histogram-plot.js';
import { timelineSvg } from '../tools/plots/timeline-plot.js';

/** Well-formed enough to be a standalone SVG file: one <svg> root and every tag closed in order. */
function assertWellFormedSvg(svg: string): void {
  if (!svg.startsWith('<svg')) throw new Error(`does not start with <svg: ${svg.slice(0, 40)}`);
  const open: string[] = [];
  for (const match of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = match;
    if (selfClosing) continue;
    if (!closing) open.push(name!);
    else if (open.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
    if (open.length === 0 && match.index + match[0].length !== svg.trimEnd().length) throw new Error('content after the root element');
  }
  if (open.length > 0) throw new Error(`unclosed: ${open.join(', ')}`);
}

const count = (svg: string, pattern: RegExp) => [...svg.matchAll(pattern)].length;

test('accuracy-cost plot: one line and point series per policy plus the static exits', async (t) => {
  const series = [
    { policy: 'max-probability', points: [{ label: '-0.5', accuracy: 0.91, cost: 11 }, { label: '-1.0', accuracy: 0.905, cost: 9.5 }, { label: '-2.0', accuracy: 0.895, cost: 8 }] },
    { policy: 'entropy', points: [{ label: '-0.5', accuracy: 0.912, cost: 11.5 }, { label: '-1.0', accuracy: 0.904, cost: 10 }] },
  ];
  const staticExits = [0, 1, 2].map((exit) => ({ label: `exit-${exit}`, accuracy: 0.6 + 0.15 * exit, cost: 4 + 5 * exit }));
  const svg = await accuracyCostPlotSvg(series, { costLabel: 'expected latency (ms)', title: 'Accuracy against latency', staticExits });
  t.notThrows(() => assertWellFormedSvg(svg));
  for (const text of ['Accuracy against latency', 'expected latency (ms)', 'accuracy', 'max-probability', 'entropy', 'static exits', 'exit-2']) {
    t.true(svg.includes(`>${text}</text>`), text);
  }
  t.is(count(svg, /aria-roledescription="point"/g), 5 + 3, 'a symbol per policy point and per static exit');
  t.is(count(svg, /aria-roledescription="line mark"/g), 3, 'two policy curves and the static baseline');

  const withoutStatic = await accuracyCostPlotSvg(series, { costLabel: 'MACs', title: 'No baseline' });
  t.false(withoutStatic.includes('static exits'));
  t.is(count(withoutStatic, /aria-roledescription="point"/g), 5);
});

/** Heights of the bars, left to right, read from the paths Vega draws them as (M x,y h w v height h -w Z). */
function barHeights(svg: string): number[] {
  const bars = [...svg.matchAll(/aria-roledescription="bar" d="M([\d.e-]+),[\d.e-]+h[\d.e-]+v([\d.e-]+)h/g)];
  return bars.map((bar) => ({ x: Number(bar[1]), height: Number(bar[2]) })).sort((a, b) => a.x - b.x).map((bar) => bar.height);
}

function assertHeightsFollowCounts(t: ExecutionContext, heights: number[], counts: number[]): void {
  const pixelsPerSample = Math.max(...heights) / Math.max(...counts);
  counts.forEach((c, i) => {
    t.true(Math.abs(heights[i]! - c * pixelsPerSample) < 0.5, `bar ${i}: ${heights[i]} px for ${c}`);
    counts.forEach((other, j) => t.is(Math.sign(heights[i]! - heights[j]!), Math.sign(c - other)));
  });
}

test('exit histogram: bar heights follow the counts, in the order the exits were given', async (t) => {
  const counts = [120, 15, 300, 0, 64];
  const bars = counts.map((c, exit) => ({ exit: `exit-${exit}`, count: c }));
  const svg = await exitHistogramSvg(bars, 'Exit histogram of balanced');
  t.notThrows(() => assertWellFormedSvg(svg));
  t.true(svg.includes('>Exit histogram of balanced</text>'));
  for (const bar of bars) t.true(svg.includes(`>${bar.exit}</text>`));
  const heights = barHeights(svg);
  t.is(heights.length, counts.length);
  assertHeightsFollowCounts(t, heights, counts);
});

test('exit histogram: grouped bars, one per series within each exit, with a legend', async (t) => {
  const table = { 'max-probability@-1.0': [10, 50, 40], 'entropy@-1.0': [30, 20, 50] };
  const bars = ['exit-0', 'exit-1', 'exit-2'].flatMap((exit, i) =>
    Object.entries(table).map(([series, counts]) => ({ exit, series, count: counts[i]! })),
  );
  const svg = await exitHistogramSvg(bars, 'Where samples stop');
  t.notThrows(() => assertWellFormedSvg(svg));
  for (const series of Object.keys(table)) t.true(svg.includes(`>${series}</text>`), series);
  const heights = barHeights(svg);
  t.is(heights.length, 6);
  assertHeightsFollowCounts(t, heights, bars.map((bar) => bar.count));
});

test('timeline: one line per series, shared axes or one panel per series', async (t) => {
  const rows = Array.from({ length: 30 }, (_, minute) => [
    { t: minute, value: 100 - 1.5 * minute, series: 'battery %' },
    { t: minute, value: 48 + minute / 3, series: 'temperature (C)' },
  ]).flat();
  const options = { title: 'Gateway over 30 minutes', xLabel: 'time (min)', yLabel: 'value' };
  const svg = await timelineSvg(rows, options);
  t.notThrows(() => assertWellFormedSvg(svg));
  for (const text of [options.title, options.xLabel, options.yLabel, 'battery %', 'temperature (C)']) t.true(svg.includes(`>${text}</text>`), text);
  t.is(count(svg, /aria-roledescription="line mark"/g), 2);

  const panels = await timelineSvg(rows, { ...options, separatePanels: true });
  t.notThrows(() => assertWellFormedSvg(panels));
  t.is(count(panels, /aria-roledescription="line mark"/g), 2);
  t.is(count(panels, /aria-label="Y-axis/g), 2, 'each panel has its own y axis');

  const stepped = await timelineSvg(rows, { ...options, interpolate: 'step-after' });
  t.not(stepped, svg);
});
