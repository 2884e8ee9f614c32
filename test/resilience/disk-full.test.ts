import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { deviceTopics } from '../../agent/mqtt/topics.js';
import { AgentProcess } from '../helpers/agent-process.js';
import { mosquittoTest } from '../helpers/brokers.js';
import { assertNoSecrets, GATEWAY_USER, recordFigures, securedBroker, tinyAgentPackageForFile } from '../helpers/resilience.js';
import { fillUp, mountTmpfs } from '../helpers/tmpfs.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The gateway's disk fills up under a running agent (a real tmpfs, filled to the last
 * byte): it must keep classifying and publishing, say that logging fails, lose nothing
 * it already wrote, and resume logging by itself once space returns.
 */

const tinyPackage = tinyAgentPackageForFile();
const tmpfs = mountTmpfs('8m', 'edge-exit-resilience-disk-');
test.after.always(() => tmpfs?.unmount());
// Mounting needs root in a container that allows it (CI is); elsewhere the scenario says why it skips.
const withDisk = tmpfs ? mosquittoTest('mosquitto_passwd') : test.skip;

/** The frame count of the agent's latest status line. */
function lastFrameCount(output: string): number {
  const counts = [...output.matchAll(/(\d+) frames\s+[\d.]+ fps/g)];
  return counts.length === 0 ? 0 : Number(counts.at(-1)![1]);
}

function rowCount(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM inferences').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

withDisk('a disk that fills up under a running agent (tmpfs): classification and telemetry go on, logging says it fails, and resumes once space returns', async (t) => {
  const disk = tmpfs!.dir;
  const broker = await securedBroker(t);
  const logFile = path.join(disk, 'edge-exit.db');
  const agent = AgentProcess.start(tinyPackage(), {
    deviceId: GATEWAY_USER,
    mqtt: { url: broker.gatewayUrl },
    maxFrameRate: 30,
    telemetryIntervalMs: 1000,
    logs: { path: logFile },
  });
  t.teardown(() => agent.kill());
  const telemetry: number[] = [];
  const watcher = await mqtt.connectAsync(broker.url, { ...broker.adminLogin, protocolVersion: 5 });
  t.teardown(() => watcher.endAsync());
  watcher.on('message', () => telemetry.push(Date.now()));
  await watcher.subscribeAsync(deviceTopics(GATEWAY_USER).telemetry, { qos: 0 });

  const rowsBeforeFull = await waitFor('rows in the log', () => {
    const n = fs.existsSync(logFile) ? rowCount(logFile) : 0;
    return n > 60 ? n : undefined;
  });
  const ballast = fillUp(disk);
  const filledAt = Date.now();
  const failing = await agent.waitForOutput(/LOGGING FAILING: ([^\n"]*)/, 30_000);
  const noticedS = (Date.now() - filledAt) / 1000;
  const framesWhenNoticed = lastFrameCount(agent.output);
  await sleep(5000);
  const framesWhileFull = lastFrameCount(agent.output) - framesWhenNoticed;
  const telemetryWhileFull = telemetry.filter((at) => at > filledAt).length;
  t.true(framesWhileFull > 60, `${framesWhileFull} frames classified in 5 s with the disk full`);
  t.true(telemetryWhileFull >= 3, `${telemetryWhileFull} telemetry messages with the disk full`);
  t.true(agent.running, 'the agent is still up');
  const committedWhileFull = rowCount(logFile);
  t.true(committedWhileFull >= rowsBeforeFull, 'nothing already written was lost');

  fs.unlinkSync(ballast);
  const freedAt = Date.now();
  await agent.waitForOutput(/writes recovered/, 30_000);
  const resumedS = (Date.now() - freedAt) / 1000;
  await waitFor('rows logged after the disk had room again', () => rowCount(logFile) > committedWhileFull + 60);
  t.is(await agent.stop(), 0, agent.output);

  const db = new Database(logFile, { readonly: true });
  const integrity = String(db.pragma('integrity_check', { simple: true }));
  const rowsAtEnd = (db.prepare('SELECT count(*) AS n FROM inferences').get() as { n: number }).n;
  db.close();
  t.is(integrity, 'ok');
  const leftovers = fs.readdirSync(disk).filter((name) => name.endsWith('.tmp'));
  t.deepEqual(leftovers, [], 'no half-written temporary files');
  const framesAtEnd = lastFrameCount(agent.output);
  const searched = await assertNoSecrets(t, { outputs: { agent: agent.output }, dirs: [disk, agent.dir], exclude: [agent.configFile], broker });

  recordFigures(t, 'disk-full', {
    disk: 'tmpfs 8 MiB, filled to the last byte',
    reason: failing[1]!.trim(),
    secondsToNotice: Number(noticedS.toFixed(1)),
    framesClassifiedIn5sWhileFull: framesWhileFull,
    telemetryMessagesWhileFull: telemetryWhileFull,
    rowsBeforeFull,
    rowsKeptWhileFull: committedWhileFull,
    secondsToResumeAfterSpaceReturned: Number(resumedS.toFixed(1)),
    framesClassified: framesAtEnd,
    rowsAtEnd,
    // Frames the queue could not hold while the disk was full (the oldest are dropped and counted).
    framesNotLogged: Math.max(0, framesAtEnd - rowsAtEnd),
    integrity,
    secretSearch: { placesSearched: searched, leaks: 0 },
  });
});
