import { AUTH_NONE, AuthFlavor, AuthStat, type OpaqueAuth } from "../rpc/message.js";
import type { AuthFlavorEntry } from "./registry.js";

/**
 * AUTH_NONE (RFC 5531 §10.1): the credential's body is undefined, so it is ignored; the
 * verifier must be AUTH_NONE too, else AUTH_BADVERF, as Linux's server checks (its body is
 * ignored likewise).
 */
export const authNoneFlavor: AuthFlavorEntry<void> = Object.freeze({
  flavor: AuthFlavor.AUTH_NONE,
  name: "AUTH_NONE",
  credential: (): OpaqueAuth => AUTH_NONE,
  verify: (_cred: OpaqueAuth, verf: OpaqueAuth) => (verf.flavor === AuthFlavor.AUTH_NONE ? undefined : AuthStat.AUTH_BADVERF),
});
