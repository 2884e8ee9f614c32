#!/usr/bin/env node
// Before `npm test`: the Debian packages the tests run for real (Mosquitto, PyTorch for the
// training smoke test, openssl for the TLS tests, ffmpeg for the stream source, Chromium for the dashboard's browser tests, faketime for clock steps). As root with apt-get they are installed;
// otherwise the exact command to run is printed and the tests do not start half-equipped.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const needs = [
  { what: 'Mosquitto broker', ok: () => fs.existsSync('/usr/sbin/mosquitto'), packages: ['mosquitto'] },
  { what: 'mosquitto_pub', ok: () => has('mosquitto_pub'), packages: ['mosquitto-clients'] },
  { what: "Debian's PyTorch and numpy under /usr/bin/python3", ok: () => spawnSync('/usr/bin/python3', ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0, packages: ['python3-torch', 'python3-numpy'] },
  { what: 'openssl', ok: () => has('openssl'), packages: ['openssl'] },
  { what: 'ffmpeg (the stream source decodes video with it)', ok: () => has('ffmpeg'), packages: ['ffmpeg'] },
  // Debian's, driven by playwright-core: the tests never download a browser.
  { what: "Chromium at /usr/bin/chromium (the dashboard's browser tests)", ok: () => fs.existsSync('/usr/bin/chromium'), packages: ['chromium'] },
  { what: 'faketime (the clock-step test steps a running agent\'s wall clock)', ok: () => has('faketime'), packages: ['faketime'] },
];
const missing = needs.filter((need) => !need.ok());
if (missing.length === 0) process.exit(0);
const packages = missing.flatMap((need) => need.packages);
const command = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages.join(' ')}`;
process.stderr.write(`edge-exit tests need: ${missing.map((need) => need.what).join(', ')}.\n`);
if (process.getuid?.() !== 0 || !has('apt-get') || process.env.EDGE_EXIT_NO_INSTALL) {
  process.stderr.write(`Install them first:\n  sudo sh -c '${command}'\n`);
  process.exit(1);
}
process.stderr.write(`Installing them: ${command}\n`);
execFileSync('sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
