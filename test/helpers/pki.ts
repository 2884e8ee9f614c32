import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { temporaryDir } from './shared.js';

export interface TestPki {
  dir: string;
  /** The CA the broker trusts for client certificates, and that signed the broker's certificate. */
  caFile: string;
  /** The broker's certificate and key, for 127.0.0.1 and localhost. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate and key signed by the CA. */
  clientCertFile: string;
  clientKeyFile: string;
  /** A second CA the broker knows nothing of, and a client certificate it signed. */
  rogueCaFile: string;
  rogueClientCertFile: string;
  rogueClientKeyFile: string;
}

/**
 * A throwaway PKI made with openssl at test time (P-256 keys, valid two days),
 * so no key material is ever committed. Mosquitto started as root drops to its
 * own user before loading its certificate and key, so the directory and files
 * are readable by all: they protect nothing but a test.
 */
export function makeTestPki(): TestPki {
  const dir = temporaryDir('edge-exit-pki-');
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string) => openssl('req', '-x509', ...key, '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2', '-subj', `/CN=edge-exit test ${name}`);
  const issue = (name: string, subject: string, caName: string, extensions?: string) => {
    openssl('req', ...key, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${subject}`);
    const extra = extensions ? ['-extfile', file(`${name}.ext`)] : [];
    if (extensions) fs.writeFileSync(file(`${name}.ext`), `${extensions}\n`);
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${caName}.pem`), '-CAkey', file(`${caName}.key`), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', ...extra);
  };
  ca('ca');
  ca('rogue-ca');
  issue('server', '127.0.0.1', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost');
  issue('client', 'gate-3', 'ca');
  issue('rogue-client', 'gate-3', 'rogue-ca');
  fs.chmodSync(dir, 0o755);
  for (const name of fs.readdirSync(dir)) fs.chmodSync(file(name), 0o644);
  return {
    dir,
    caFile: file('ca.pem'),
    serverCertFile: file('server.pem'),
    serverKeyFile: file('server.key'),
    clientCertFile: file('client.pem'),
    clientKeyFile: file('client.key'),
    rogueCaFile: file('rogue-ca.pem'),
    rogueClientCertFile: file('rogue-client.pem'),
    rogueClientKeyFile: file('rogue-client.key'),
  };
}

/** A Mosquitto password file made with mosquitto_passwd, readable by the broker's user (see makeTestPki). */
export function makePasswordFile(dir: string, accounts: Record<string, string>): string {
  const file = path.join(dir, 'passwords');
  fs.writeFileSync(file, '');
  for (const [user, password] of Object.entries(accounts)) addAccount(file, user, password);
  return file;
}

/** Adds (or changes) an account; the broker reads the file when it starts. */
export function addAccount(file: string, user: string, password: string): void {
  execFileSync('mosquitto_passwd', ['-b', file, user, password]);
  fs.chmodSync(file, 0o644);
}
