import fs from 'node:fs';
import { type AgentConfig, ConfigError, redactUrl } from '../config/agent-config.js';

type MqttSettings = AgentConfig['mqtt'];
type TlsFileField = 'caFile' | 'certFile' | 'keyFile';

const TLS_FILE_PURPOSE: Record<TlsFileField, string> = {
  caFile: "the CA certificate (PEM) that signed the broker's certificate",
  certFile: "this device's client certificate (PEM), signed by a CA the broker trusts",
  keyFile: "the private key (PEM) of mqtt.certFile",
};

/**
 * The TLS files of the config, read once at start-up. A missing or unreadable
 * file is a config mistake, so it stops start-up naming the field, like any
 * invalid config value, rather than surfacing later as an obscure TLS error.
 */
export function readTlsFiles(mqtt: MqttSettings): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  if ((mqtt.certFile === undefined) !== (mqtt.keyFile === undefined)) {
    throw new ConfigError(`mqtt.certFile and mqtt.keyFile go together: set both (the client certificate and its private key) or neither; only mqtt.${mqtt.certFile ? 'certFile' : 'keyFile'} is set`);
  }
  const read = (field: TlsFileField): Buffer | undefined => {
    const file = mqtt[field];
    if (file === undefined) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new ConfigError(`mqtt.${field}: cannot read ${file} (${code}); it should be ${TLS_FILE_PURPOSE[field]}`);
    }
  };
  return { ca: read('caFile'), cert: read('certFile'), key: read('keyFile') };
}

/** Node's codes for a broker that is not there (yet): worth retrying, unlike a refusal. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'EPIPE']);

/** Whether a connection failure means the broker cannot be reached now, rather than that it refused this client. */
export function isBrokerUnreachable(error: Error & { code?: string | number }): boolean {
  return typeof error.code === 'string' && UNREACHABLE.has(error.code);
}

/** CONNACK codes of a refused login: MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135). */
const BAD_CREDENTIALS = new Set([4, 134]);
const NOT_AUTHORIZED = new Set([5, 135]);

/** Node's codes for a broker certificate this device does not trust. */
const UNTRUSTED_SERVER = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * A broker connection failure in the words an operator needs: what was refused
 * and which setting fixes it. mqtt.js reports a refused login as a bare CONNACK
 * code and a refused client certificate as an OpenSSL alert, neither of which
 * says what to change. Never includes the password.
 */
export function describeConnectionError(error: Error & { code?: string | number }, url: string, mqtt: MqttSettings): string {
  const broker = redactUrl(url);
  const code = error.code;
  // mqtt.js takes a login from the URL too (mqtt://user:pass@host): that one counts as set.
  const urlUser = /^[a-z]+:\/\/([^:@/]+)(?::[^/]*)?@/.exec(url)?.[1];
  const username = mqtt.username ?? (urlUser === undefined ? undefined : decodeURIComponent(urlUser));
  const user = username === undefined ? 'no username is set' : `user ${username}`;
  const credentialsFix = 'set mqtt.username and mqtt.password (or EDGE_EXIT__MQTT__USERNAME and EDGE_EXIT__MQTT__PASSWORD) to an account the broker accepts';
  if (typeof code === 'number' && BAD_CREDENTIALS.has(code)) {
    return `mqtt: ${broker} refused the username or password (${user}): ${credentialsFix}`;
  }
  if (typeof code === 'number' && NOT_AUTHORIZED.has(code)) {
    // Mosquitto answers a wrong password with "not authorized" too, so both causes are named.
    return `mqtt: ${broker} refused the connection as not authorized (${user}${mqtt.password === undefined ? ', no password is set' : ''}): ${credentialsFix}, and allowed by its ACL`;
  }
  if (typeof code === 'string' && UNTRUSTED_SERVER.has(code)) {
    const now = mqtt.caFile === undefined ? 'none is set, so only the system CAs are trusted' : `now ${mqtt.caFile}`;
    return `mqtt: the TLS certificate of ${broker} is not trusted (${error.message}): set mqtt.caFile to ${TLS_FILE_PURPOSE.caFile} (${now})`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `mqtt: the TLS certificate of ${broker} is not valid now (${error.message}): renew it on the broker, or check this device's clock`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `mqtt: the TLS certificate of ${broker} is for another host (${error.message}): use in mqtt.url the host name the certificate was issued for`;
  }
  if (typeof code === 'string' && code.startsWith('ERR_SSL_') && /ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|ACCESS_DENIED)/.test(code)) {
    const now = mqtt.certFile === undefined ? 'none is set' : `now ${mqtt.certFile}`;
    return `mqtt: ${broker} refused this device's TLS client certificate (${code}): set mqtt.certFile and mqtt.keyFile to ${TLS_FILE_PURPOSE.certFile} (${now})`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return `mqtt: ${broker} does not speak TLS on that port: use mqtt:// for a plain listener, or the broker's TLS port`;
  }
  if (code === 'ECONNREFUSED') return `mqtt: nothing listens at ${broker} (is the broker running? is mqtt.url right?)`;
  return `mqtt ${broker}: ${error.message}`;
}
