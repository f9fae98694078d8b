import { isIPv6 } from "node:net";

/**
 * A peer's address as every transport prints it: `127.0.0.1:51234`, and `[::1]:51234` for
 * IPv6, bracketed as in a URL (RFC 3986 §3.2.2) so that the port cannot be read as part of
 * the address.
 */
export function formatPeer(address: string | undefined, port: number | undefined): string {
  const host = address ?? "?";
  return `${isIPv6(host) ? `[${host}]` : host}:${port ?? "?"}`;
}
