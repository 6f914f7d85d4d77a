// Checks the authority a request is routed by (Host, absolute-form, :authority). Routing
// reads it one way; the app, a log or a policy may read "a@b", "a,b" or "a/b" another, so
// only RFC 3986's host [":" port] is accepted, without userinfo or list separators.

// IP-literal, or a reg-name of unreserved and sub-delims characters (less ",") and %XX.
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+)$/;

/** Why `authority` cannot be routed by, or null when it is a well-formed host[:port]. */
export function authorityProblem(authority: string): string | null {
  if (authority === "") return "empty authority (Host)";
  let host = authority;
  const colon = authority.lastIndexOf(":");
  if (colon !== -1 && colon > authority.lastIndexOf("]")) {
    host = authority.slice(0, colon);
    const port = authority.slice(colon + 1);
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535 || Number(port) === 0) {
      return `invalid port in authority ${JSON.stringify(authority.slice(0, 100))}`;
    }
  }
  if (!HOST.test(host)) return `invalid authority ${JSON.stringify(authority.slice(0, 100))} (expected host[:port])`;
  return null;
}
