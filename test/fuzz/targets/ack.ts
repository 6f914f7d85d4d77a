// A proxy's acknowledgement body (control/api/server.ts, POST /v1/proxies/ack), read before
// the proxy's token is checked: JSON text in, an ApiError 400 or an Ack whose filter reports
// are bounded out.
import { ApiError, parseAck, parseJson } from "../../../control/api/server.ts";
import { bytes, check, refusedOr, utf8, type FuzzTarget } from "../target.ts";

const isBadRequest = (e: unknown) => e instanceof ApiError && e.status === 400;

export const ack: FuzzTarget = {
  name: "ack",
  about:
    "parseJson and parseAck on arbitrary text: an ApiError 400 or an acknowledgement of the right types with at most 64 bounded filter reports",
  sources: ["control/api/server.ts"],
  maxLength: 4096,
  json: true,
  dictionary: [
    '"namespace"',
    '"pod"',
    '"version"',
    '"accepted"',
    '"error"',
    '"unavailable"',
    '"filter"',
    '"reason"',
    '"quarantined"',
    '"backoffMs"',
    '"until"',
    "true",
    "false",
    "null",
    "[]",
    "{}",
    '""',
    "0",
    '"__proto__"',
    '"\\ud800"',
  ],
  seeds: () =>
    [
      { namespace: "shop", pod: "web-1", version: "v1", accepted: true },
      {
        namespace: "shop",
        pod: "web-1",
        version: "v2",
        accepted: false,
        error: "invalid",
        unavailable: [{ filter: "shop/auth", reason: "digest mismatch" }, null, { filter: 1 }],
      },
      {
        namespace: "shop",
        pod: "web-1",
        version: "v1",
        accepted: true,
        quarantined: [
          { filter: "shop/auth", reason: "it failed 5 times in 5 calls within 10 s", backoffMs: 1000, until: "2030-01-01T00:00:00Z" },
          { filter: "shop/auth", reason: "r", backoffMs: 1e300, until: "2030-01-01T00:00:00Z" },
          { filter: "shop/auth", reason: "r", backoffMs: 1000, until: "not a time" },
        ],
      },
    ].map((a) => bytes(JSON.stringify(a))),
  fuzz(data) {
    const parsed = refusedOr(() => parseAck(parseJson(utf8(data))), isBadRequest);
    if (!parsed) return;
    check(
      typeof parsed.namespace === "string" &&
        typeof parsed.pod === "string" &&
        typeof parsed.version === "string" &&
        typeof parsed.accepted === "boolean",
      "fields of the wrong type",
    );
    check(parsed.error === undefined || typeof parsed.error === "string", "error is not a string");
    check(parsed.unavailable.length <= 64, "more than 64 filter reports");
    for (const u of parsed.unavailable)
      check(
        typeof u.filter === "string" && u.filter.length <= 300 && typeof u.reason === "string" && u.reason.length <= 1000,
        "an unbounded filter report",
      );
    check(parsed.quarantined.length <= 64, "more than 64 quarantine reports");
    for (const q of parsed.quarantined)
      check(
        typeof q.filter === "string" &&
          q.filter.length <= 300 &&
          typeof q.reason === "string" &&
          q.reason.length <= 1000 &&
          Number.isInteger(q.backoffMs) &&
          q.backoffMs > 0 &&
          q.backoffMs <= 3_600_000 &&
          Number.isFinite(Date.parse(q.until)) &&
          q.until.length <= 64,
        "an unbounded quarantine report",
      );
  },
};
