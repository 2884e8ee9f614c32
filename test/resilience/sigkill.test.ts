import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { AgentProcess } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import {
  assertNoSecrets,
  OFFLOAD_EVERY_FRAME,
  recordFigures,
  runSeed,
  securedBroker,
  seededRandom,
  startServerProcess,
  GATEWAY_USER,
  tinyAgentPackageForFile,
} from '../helpers/resilience.js';
import { waitFor } from '../helpers/wait.js';

/*
 * Power cuts at random moments: the agent is SIGKILLed again and again, at start-up,
 * mid-frame or mid-flush, while it logs and offloads. Every row a reader saw committed
 * before a kill must be there after it, and both SQLite files must stay intact.
 */

const KILLS = 12;
const withMosquitto = mosquittoTest('mosquitto_passwd');
const tinyPackage = tinyAgentPackageForFile();

/** Rows as (id, source, frame, ts): a committed row keeps all four, whatever happens after. */
function committedRows(file: string): Set<string> {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return new Set((db.prepare('SELECT id, source, frame_id, ts FROM inferences').raw().all() as unknown[][]).map((row) => row.join('|')));
    } finally {
      db.close();
    }
  } catch {
    // Not created yet: the agent was killed before it opened its log.
    return new Set();
  }
}

/** integrity_check of a SQLite file; 'not created' when the agent died before making it. */
function integrity(file: string): string {
  if (!fs.existsSync(file)) return 'not created';
  const db = new Database(file, { fileMustExist: true });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
}

withMosquitto(`${KILLS} SIGKILLs at random moments: no committed row lost, the log and the outbox intact, the agent runs on after each`, async (t) => {
  const seed = runSeed();
  t.log(`seed ${seed} (EDGE_EXIT_RESILIENCE_SEED=${seed} replays it)`);
  const random = seededRandom(seed);
  const broker = await securedBroker(t);
  const server = await startServerProcess(t, broker, tinyPackage());

  let agent = AgentProcess.start(tinyPackage(), { deviceId: GATEWAY_USER, mqtt: { url: broker.gatewayUrl }, maxFrameRate: 30, ...OFFLOAD_EVERY_FRAME });
  t.teardown(() => agent.kill());
  const logFile = agent.logFile;
  const outboxFile = path.join(agent.dir, 'outbox.db');
  const outputs: Record<string, string> = {};
  const rounds: { delayMs: number; phase: string; seenBefore: number; after: number; lost: number }[] = [];
  let lostTotal = 0;
  let integrityChecks = 0;
  let previousCount = 0;

  for (let round = 0; round < KILLS; round += 1) {
    if (round > 0) agent = agent.restart();
    // From the first instant (before the model is open) to well into steady running.
    const delayMs = Math.round(random() * 7000);
    const started = Date.now();
    let seen = committedRows(logFile);
    // Read what is committed as late as possible before the kill: the reader is another process, as `edge-exit logs` is.
    while (Date.now() - started < delayMs) {
      await sleep(Math.min(100, Math.max(0, delayMs - (Date.now() - started))));
      seen = committedRows(logFile);
    }
    const phase = /frames\s+[\d.]+ fps|offload server \S+ is up/.test(agent.output) ? 'running' : 'starting';
    await agent.kill('SIGKILL');
    outputs[`agent run ${round + 1}`] = agent.output;

    const after = committedRows(logFile);
    const lost = [...seen].filter((row) => !after.has(row)).length;
    lostTotal += lost;
    rounds.push({ delayMs, phase, seenBefore: seen.size, after: after.size, lost });
    t.is(lost, 0, `kill ${round + 1} after ${delayMs} ms: ${lost} committed rows lost`);
    t.true(after.size >= previousCount, `kill ${round + 1}: rows only rise (${previousCount} → ${after.size})`);
    previousCount = after.size;
    for (const file of [logFile, outboxFile]) {
      const result = integrity(file);
      if (result === 'not created') continue;
      integrityChecks += 1;
      t.is(result, 'ok', `${path.basename(file)} after kill ${round + 1}`);
    }
  }

  // The gateway comes back once more and works: new rows, offloads answered, a clean stop.
  agent = agent.restart();
  await waitFor('new rows after the last kill', () => committedRows(logFile).size > previousCount + 20, 60_000);
  await agent.waitForOutput(/offload server resilience-rack is up/);
  t.is(await agent.stop(), 0, agent.output);
  outputs['agent after the kills'] = agent.output;
  outputs.server = server.output;
  t.is(integrity(logFile), 'ok');
  const searched = await assertNoSecrets(t, { outputs, dirs: [agent.dir], exclude: [agent.configFile], broker });

  recordFigures(t, 'sigkill', {
    seed,
    kills: rounds.length,
    killedWhileStarting: rounds.filter((r) => r.phase === 'starting').length,
    killedWhileRunning: rounds.filter((r) => r.phase === 'running').length,
    committedRowsLost: lostTotal,
    rowsAtEnd: committedRows(logFile).size,
    integrityChecksOk: integrityChecks + 1,
    secretSearch: { placesSearched: searched, leaks: 0 },
    rounds,
  });
});
