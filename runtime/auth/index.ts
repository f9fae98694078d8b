import { authNoneFlavor } from "./none.js";
import type { AuthFlavorEntry } from "./registry.js";
import { authSysFlavor } from "./sys.js";

export { authRegistry, isFlavorNumber, type AuthContext, type AuthFlavorEntry, type AuthRegistry, type AuthVerifier } from "./registry.js";
export { authNoneFlavor } from "./none.js";
export { authSysFlavor, decodeAuthSys, processAuthSys } from "./sys.js";

/** The flavors every channel and server knows unless told otherwise: a new flavor's file is listed here, or passed in `authFlavors`. */
export const defaultAuthFlavors: readonly AuthFlavorEntry[] = Object.freeze([authNoneFlavor, authSysFlavor]);
