/** The shared words of the SharedArrayBuffer ping-pong floor (bench/floors.ts, bench/sab-worker.ts). */
export const SabWord = {
  /** Bumped by the client per call (own cache line). */
  CALLS: 0,
  /** Set by the worker to the call counter it answered (own cache line). */
  REPLIES: 16,
  SERVER_SLEEPING: 32,
  CLIENT_SLEEPING: 33,
  SHUTDOWN: 34,
  MODE: 35,
  REPLY_LEN: 36,
} as const;
export const SAB_MODE_SPIN = 0;
export const SAB_MODE_SLEEP = 1;
/** How long the worker polls after a call before it sleeps, in spin mode. */
export const SAB_SPIN_MS = 1;
export const SAB_DATA_OFFSET = 256;
export const SAB_DATA_BYTES = 4096;
