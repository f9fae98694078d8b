import { AuthFlavor, AuthStat, authSys as encodeAuthSys, readAuthSys, type AuthSysParams, type OpaqueAuth } from "../rpc/message.js";
import type { XdrReader } from "../xdr/reader.js";
import { XdrWriter } from "../xdr/writer.js";
import type { AuthContext, AuthFlavorEntry } from "./registry.js";

/**
 * AUTH_SYS (RFC 5531 §10.2): the credential is an authsys_parms, encoded once per client; a
 * server decodes it into `call.authSys` before verifying (a body that does not decode is
 * AUTH_BADCRED), and the verifier must be AUTH_NONE (else AUTH_BADVERF). The wire code lives
 * with the other message codecs in rpc/message.ts.
 */
export const authSysFlavor: AuthFlavorEntry<AuthSysParams> = Object.freeze({
  flavor: AuthFlavor.AUTH_SYS,
  name: "AUTH_SYS",
  credential: (params: AuthSysParams): OpaqueAuth => encodeAuthSys(params, new XdrWriter(512)),
  verify: (_cred: OpaqueAuth, verf: OpaqueAuth, call: AuthContext) =>
    call.authSys === undefined ? AuthStat.AUTH_BADCRED : verf.flavor === AuthFlavor.AUTH_NONE ? undefined : AuthStat.AUTH_BADVERF,
});

/** The authsys_parms in a credential body, or undefined when it does not decode. */
export function decodeAuthSys(body: Uint8Array, reader: XdrReader): AuthSysParams | undefined {
  try {
    return readAuthSys(body, reader);
  } catch {
    return undefined;
  }
}
