import type { IClientOptions } from 'mqtt';
import type { AgentConfig } from '../config/agent-config.js';
import { readTlsFiles } from './connection-errors.js';

/**
 * The connection options every edge-exit MQTT client takes from the `mqtt` settings,
 * the agent's link and the offload server alike: login, TLS files and how to retry.
 * One place, so a gateway and its server cannot drift apart on security.
 */
export function brokerConnectOptions(mqtt: AgentConfig['mqtt']): IClientOptions {
  return {
    // mqtt.js gives up for good once a broker refuses the login; an operator who then fixes the account on the broker expects the client to get in.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    // The first retry; attachReconnectBackoff lengthens the later ones.
    reconnectPeriod: mqtt.reconnectMinMs,
    username: mqtt.username,
    password: mqtt.password,
    ...readTlsFiles(mqtt),
  };
}
