import type { AuthStat, AuthSysParams, OpaqueAuth } from "../rpc/message.js";

/**
 * Authentication flavors by number (RFC 5531 §8.2): what a client sends for a flavor and how a
 * server verifies it, side by side in one entry. The registries are plain maps each client
 * channel and server builds for itself from the built-in entries and the ones its options
 * add, so nothing global can be changed by one application (or test) under another.
 */

/** The part of a call a verifier sees: who is called, and the credential and verifier sent. */
export interface AuthContext {
  readonly xid: number;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly cred: OpaqueAuth;
  readonly verf: OpaqueAuth;
  /** The AUTH_SYS credentials, when the call carries them and they decode. */
  readonly authSys: AuthSysParams | undefined;
}

/**
 * Verifies the credential and verifier of one flavor: undefined or AUTH_OK accepts the call,
 * any other auth_stat refuses it with AUTH_ERROR (RFC 5531 §9).
 */
export type AuthVerifier<C extends AuthContext = AuthContext> = (cred: OpaqueAuth, verf: OpaqueAuth, call: C) => AuthStat | number | undefined | void;

/** One flavor. Without `verify` a server refuses it (fail closed); without `credential` a client cannot build it from parameters. */
export interface AuthFlavorEntry<P = unknown> {
  /** The flavor number (RFC 5531 §8.2; IANA keeps the list). */
  readonly flavor: number;
  readonly name: string;
  /** The credential a client sends; built once per client options object, not per call. */
  // Methods, so an entry of any parameter type goes into a registry of entries (bivariance);
  // both are called as plain functions, without `this`.
  credential?(params: P): OpaqueAuth;
  verify?(cred: OpaqueAuth, verf: OpaqueAuth, call: AuthContext): AuthStat | number | undefined | void;
}

/** Flavor entries by number, as a channel or server holds them. */
export type AuthRegistry = ReadonlyMap<number, AuthFlavorEntry>;

/** Whether `n` can be a flavor number on the wire (an XDR unsigned int). */
export function isFlavorNumber(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/**
 * A new registry: `base`, then `extra` over it (an entry replaces the one of its number).
 * Throws on an entry whose flavor is not a flavor number or whose builder or verifier is not
 * a function, so a misspelt registration fails where it is made, not on a call.
 */
export function authRegistry(base: Iterable<AuthFlavorEntry>, extra: Iterable<AuthFlavorEntry> = [], where = "authFlavors"): AuthRegistry {
  const map = new Map<number, AuthFlavorEntry>();
  for (const entry of [...base, ...extra]) {
    if (entry === null || typeof entry !== "object" || !isFlavorNumber(entry.flavor)) {
      throw new RangeError(`${where}: ${String((entry as { flavor?: unknown } | null)?.flavor)} is not a flavor number`);
    }
    for (const key of ["credential", "verify"] as const) {
      if (entry[key] !== undefined && typeof entry[key] !== "function") throw new TypeError(`${where}: ${entry.name ?? entry.flavor}.${key} is not a function`);
    }
    map.set(entry.flavor, entry);
  }
  return map;
}
