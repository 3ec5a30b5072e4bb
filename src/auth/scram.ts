/** SCRAM-SHA-256 for both of pgmux's roles: server to its clients, client to PostgreSQL. */
export {
  certificateBindingHash,
  ChannelBindingError,
  SCRAM_SHA_256_PLUS,
  tlsServerEndPoint,
} from './channel-binding.js';
export type { ChannelBindingErrorCode } from './channel-binding.js';
export { ScramClientSession, UPSTREAM_KEY_CACHE } from './scram-client.js';
export type { ScramClientCredentials, ScramClientOptions } from './scram-client.js';
export { ScramProtocolError } from './scram-error.js';
export { MAX_SCRAM_MESSAGE_LENGTH } from './scram-message.js';
export {
  formatScramVerifier,
  makeScramSecret,
  parseScramVerifier,
  SCRAM_SHA_256,
} from './scram-secret.js';
export type { ScramSalt, ScramSecret } from './scram-secret.js';
export { ScramServerSession } from './scram-server.js';
export type { ScramClientFinal, ScramServerOptions, ScramServerResult } from './scram-server.js';
export { DEFAULT_SCRAM_KEY_CACHE_SIZE, LruMap, ScramKeyCache } from './scram-key-cache.js';
export type { ScramKeyCacheStats } from './scram-key-cache.js';
