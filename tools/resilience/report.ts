/**
 * Turns the figures the resilience scenarios left (test/resilience, via recordFigures)
 * into docs/reliability.md and a plot of the soak, and prints the summary table.
 * Run by `npm run test:resilience` after the scenarios.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../agent/config/paths.js';
import { timelineSvg, type TimelineRow } from '../plots/timeline-plot.js';

const FIGURES_DIR = process.env.EDGE_EXIT_RESILIENCE_FIGURES ?? path.join(os.tmpdir(), 'edge-exit-resilience');
const DOC = path.join(PROJECT_ROOT, 'docs', 'reliability.md');
const PLOT = path.join(PROJECT_ROOT, 'docs', 'results', 'resilience', 'soak.svg');

type Figures = Record<string, any>;

function load(scenario: string): Figures | undefined {
  const file = path.join(FIGURES_DIR, `${scenario}.json`);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Figures) : undefined;
}

const n = (value: number) => value.toLocaleString('en');

/** Live heap after a full collection and memory outside the V8 heap (what a leak raises), then RSS (which V8's heap sizing swings). */
function memoryGrowth(process: Figures): string {
  const span = (g: { start: number; end: number }) => `${g.start.toFixed(1)} → ${g.end.toFixed(1)} MiB`;
  const judged = process.liveHeapMiB ? `live heap ${span(process.liveHeapMiB)}, outside the heap ${span(process.outsideHeapMiB)}, ` : '';
  return `${judged}RSS ${span(process.rssMiB)}`;
}

/** One row per scenario: what was done, what had to hold, what was measured. */
function summaryRows(f: Record<string, Figures | undefined>): string[][] {
  const rows: string[][] = [];
  const { 'config-fuzz-embedded': embeddedFuzz } = f;
  const { sigkill, 'broker-kills': brokerKills, 'config-fuzz': configFuzz, 'offload-fuzz': offloadFuzz, 'disk-full': diskFull, soak, 'soak-long': soakLong } = f;
  if (sigkill)
    rows.push([
      'SIGKILLs at random moments',
      `${sigkill.kills} kills (${sigkill.killedWhileStarting} while starting, ${sigkill.killedWhileRunning} while running)`,
      `${sigkill.committedRowsLost} committed rows lost; ${sigkill.integrityChecksOk} integrity checks ok (log and outbox after every kill); ${n(sigkill.rowsAtEnd)} rows at the end`,
    ]);
  if (brokerKills)
    rows.push([
      'Broker kill -9 during offload',
      `${brokerKills.brokerKills} kills, down ${brokerKills.outages.map((o: { downMs: number }) => o.downMs / 1000).join('/')} s`,
      `${n(brokerKills.offloaded)} offloaded, ${n(brokerKills.answered)} answered, ${brokerKills.lost} lost, ${brokerKills.duplicated} duplicated; ${brokerKills.framesPerSecond} frames/s against a cap of 10`,
    ]);
  if (configFuzz)
    rows.push([
      'Fuzzed config/set',
      `${n(configFuzz.payloads)} payloads (${configFuzz.megabytes} MB, ${Object.keys(configFuzz.kinds).length} kinds)`,
      `${n(configFuzz.answers)} answered: ${configFuzz.accepted} accepted, ${n(configFuzz.refusedWithReason)} refused with a reason; ${configFuzz.crashes} crashes; retained state and overrides = the last valid change; ${configFuzz.framesPerSecond.beforeBurst} → ${configFuzz.framesPerSecond.duringBurst} frames/s during the burst`,
    ]);
  if (embeddedFuzz)
    rows.push([
      'config/set burst on the embedded broker',
      `${n(embeddedFuzz.payloads)} fuzzed payloads to aedes inside the agent's process`,
      `${n(embeddedFuzz.answers)} answered; ${embeddedFuzz.framesPerSecond.beforeBurst} → ${embeddedFuzz.framesPerSecond.duringBurst} frames/s during the ${embeddedFuzz.burstSeconds.toFixed(1)} s burst`,
    ]);
  if (offloadFuzz)
    rows.push([
      'Fuzzed offload frames (MQTT 5)',
      `${n(offloadFuzz.frames)} frames (${Object.keys(offloadFuzz.kinds).length} kinds)`,
      `${offloadFuzz.answeredOnOwnTopic} answered on the device's own topic, ${n(offloadFuzz.refusedWithReason)} refused and counted by reason (${Object.entries(offloadFuzz.refusedBy ?? {}).map(([reason, count]) => `${reason} ${count}`).join(', ')}), ${offloadFuzz.publishedElsewhere} published elsewhere; ${offloadFuzz.crashes} crashes; ${offloadFuzz.serverWarningLines} warning lines`,
    ]);
  if (diskFull)
    rows.push([
      'Disk full under a running agent',
      diskFull.disk,
      `noticed in ${diskFull.secondsToNotice} s; ${diskFull.framesClassifiedIn5sWhileFull} frames and ${diskFull.telemetryMessagesWhileFull} telemetry messages in 5 s while full; logging resumed ${diskFull.secondsToResumeAfterSpaceReturned} s after space returned; ${diskFull.framesNotLogged} frames not logged; integrity ${diskFull.integrity}`,
    ]);
  for (const [name, run] of [['Soak', soak], ['Longer soak (by hand: EDGE_EXIT_SOAK_SECONDS)', soakLong]] as const) {
    if (!run) continue;
    rows.push([
      name,
      `${run.seconds} s, ${n(run.frames)} frames, every one offloaded, ${run.configChanges} config changes`,
      `medians of the second quarter → of the last: agent ${memoryGrowth(run.agent)}, descriptors ${run.agent.fds.start} → ${run.agent.fds.end}, threads ${run.agent.threads.start} → ${run.agent.threads.end}; server ${memoryGrowth(run.server)}, descriptors ${run.server.fds.start} → ${run.server.fds.end}`,
    ]);
  }
  const searched = Object.values(f).reduce((sum, figures) => sum + (figures?.secretSearch?.placesSearched ?? 0), 0);
  const leaks = Object.values(f).reduce((sum, figures) => sum + (figures?.secretSearch?.leaks ?? 0), 0);
  rows.push(['Secrets', 'after every scenario: outputs, every file of the agent, retained topics, messages seen', `${leaks} leaks in ${n(searched)} places searched`]);
  return rows;
}

async function soakPlot(soak: Figures): Promise<void> {
  const rows: TimelineRow[] = [];
  for (const [who, readings] of [['agent', soak.agentReadings], ['server', soak.serverReadings]] as const) {
    for (const reading of readings as { t: number; rssMiB: number; fds: number }[]) {
      rows.push({ t: reading.t, value: reading.rssMiB, series: `${who} RSS (MiB)` }, { t: reading.t, value: reading.fds, series: `${who} open descriptors` });
    }
    const heap = (soak[`${who}HeapReadings`] ?? []) as { t: number; liveHeapMiB: number }[];
    for (const reading of heap) rows.push({ t: reading.t, value: reading.liveHeapMiB, series: `${who} live heap after GC (MiB)` });
  }
  fs.mkdirSync(path.dirname(PLOT), { recursive: true });
  fs.writeFileSync(PLOT, await timelineSvg(rows, { title: `Soak: ${soak.seconds} s, ${soak.frames} frames offloaded`, xLabel: 'seconds', yLabel: '', separatePanels: true, height: 110 }));
}

async function main(): Promise<void> {
  const scenarios = ['sigkill', 'broker-kills', 'config-fuzz', 'config-fuzz-embedded', 'offload-fuzz', 'disk-full', 'soak', 'soak-long'];
  const figures = Object.fromEntries(scenarios.map((s) => [s, load(s)]));
  // The longer soak is run by hand only, so it is never reported missing.
  const missing = scenarios.filter((s) => !figures[s] && s !== 'soak-long');
  if (missing.length === scenarios.length) throw new Error(`no figures in ${FIGURES_DIR}: run the scenarios first (npm run test:resilience)`);
  const rows = summaryRows(figures);
  const table = ['| Scenario | Done | Measured |', '|---|---|---|', ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
  console.log(table);
  if (missing.length > 0) console.log(`\nnot run (skipped, or failed before recording): ${missing.join(', ')}`);
  const plotted = figures['soak-long'] ?? figures.soak;
  if (plotted) await soakPlot(plotted);
  const seeds = scenarios.filter((s) => figures[s]?.seed !== undefined).map((s) => `${s} ${figures[s]!.seed}`).join(', ');
  const dates = scenarios.map((s) => figures[s]?.recordedAt).filter(Boolean).sort();
  fs.writeFileSync(
    DOC,
    `# Reliability

What the resilience suite (\`test/resilience/\`) does to a running gateway and what it measured. Each scenario is an ava test that fails when its rule breaks; it runs in CI with the other tests, and on its own with

\`\`\`
npm run test:resilience
\`\`\`

which also rewrites this page from the figures. Every scenario runs the real \`edge-exit run\` (and \`edge-exit server\` where offload is involved) against a real Mosquitto that refuses anonymous clients; each login's password holds a marker that is searched for afterwards.

## Latest run

${dates[0] ?? ''} on this project's development machine (2 cores, no Pi measured); seeds: ${seeds || 'none'} (\`EDGE_EXIT_RESILIENCE_SEED\` replays one).

${table}
${missing.length > 0 ? `\nNot in this run: ${missing.join(', ')}.\n` : ''}
${plotted ? `![RSS and open descriptors of the agent and the server during the ${plotted.seconds} s soak](results/resilience/soak.svg)\n` : ''}
## What each scenario holds to

- **SIGKILLs**: the agent is killed at a random moment from its first instant to seconds into running, again and again in the same state directory. A reader (another process, as \`edge-exit logs\` is) notes every committed row just before each kill; all must be there after it, \`PRAGMA integrity_check\` must say ok for the log and the outbox, and the agent must run and stop cleanly at the end. A kill loses only frames not yet flushed (about a second, by design).
- **Broker kills**: Mosquitto without persistence is killed with SIGKILL five times while the agent offloads every frame; it forgets every session and in-flight message. Every offloaded frame must be answered exactly once (the outbox resends, the server answers a repeat from its cache, the agent ignores a second answer), and the frame rate must hold.
- **config/set fuzz**: thirteen kinds of payload (truncated or non-JSON, wrong types, unknown or misspelt keys, out of range, deployment-only sections, nesting thousands deep, over 16 KiB, random bytes, prototype pollution, non-finite numbers, bad ids) and 20 valid changes. Every payload gets an answer; every refusal says why; a payload too large to parse is still answered under its id when it starts with one. The client waits for answers to all but 200 of what it sent, as a broker queues only so many messages for a subscriber. The agent handles config/set in 2 ms slices with 8 ms pauses, so the burst cannot take the frame loop's time.
- **Offload fuzz**: valid frames with and without MQTT 5 properties, large correlation data, response topics naming wildcards or other devices' topics, random bytes, truncation, segments past the last, wrong tensor sizes, other models, garbage images, invalid device ids, empty payloads, and resends. The server must answer valid frames on the requesting device's own topic (echoing correlation data), refuse and count the rest, publish nowhere else, throttle its warnings, and answer an ordinary request afterwards.
- **Disk full**: the agent's state directory is a real tmpfs, filled to the last byte under it. It must keep classifying and publishing telemetry, say \`LOGGING FAILING\` with the reason, keep every row already written, leave no half-written file, and resume logging by itself once space returns.
- **Soak**: classification, offload of every frame and a config change every four seconds. A probe preloaded into the agent and the server (test/helpers/heap-probe.mjs) runs a full garbage collection every 5 s and reads the memory left. After the first quarter (warm-up), the median of the last quarter may not exceed that of the second by 2 MiB for the live V8 heap, or by 10 MiB for memory outside it (native: TFLite, SQLite, buffers); descriptors and threads may not grow by more than a few. RSS is recorded, not judged: V8 grows and shrinks its heap by tens of MiB with no leak at all (a CI run failed on that before the probe), while a leak of 1 KiB a frame raises the live heap by 3.5 MiB in two minutes.
- **Secrets**: after every scenario, the agent's and server's outputs, every file the agent wrote (SQLite log and WAL, outbox, status, remote config), every retained topic and the messages seen are searched for the password marker. The operator's own config file, which holds the login on purpose, is the one exception.
`,
  );
  console.log(`\nwrote ${path.relative(PROJECT_ROOT, DOC)}${plotted ? ` and ${path.relative(PROJECT_ROOT, PLOT)}` : ''}`);
}

await main();
