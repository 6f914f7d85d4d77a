// runtimes: node deno bun
// The Location of a route's redirect, by Gateway API's RequestRedirect rules (the cases of its
// conformance tests: host and status, scheme, port, path).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { parseConfig } from "../config/validate.ts";
import { Redirect } from "../config/schema.ts";
import { redirectLocation } from "./redirect.ts";

const redirect = (input: Record<string, unknown>) => v.parse(Redirect, input);
const request = { scheme: "http", authority: "echo", path: "/hostname-redirect" };
const prefix = { type: "PathPrefix" as const, value: "/original-prefix" };

describe("redirect Location", () => {
  it("replaces the host and keeps scheme, path and query; 302 unless a status is given", () => {
    assert.equal(redirectLocation(redirect({ hostname: "example.org" }), request, undefined), "http://example.org/hostname-redirect");
    assert.equal(redirect({}).statusCode, 302);
    assert.equal(redirect({ statusCode: 301 }).statusCode, 301);
    assert.equal(
      redirectLocation(redirect({ hostname: "example.org" }), { ...request, path: "/a?x=1&y=2" }, undefined),
      "http://example.org/a?x=1&y=2",
    );
  });

  it("keeps the request's port unless the scheme or port is given, and leaves out a scheme's own port", () => {
    assert.equal(redirectLocation(redirect({}), { ...request, authority: "echo:8080" }, undefined), "http://echo:8080/hostname-redirect");
    assert.equal(redirectLocation(redirect({}), { ...request, authority: "echo:80" }, undefined), "http://echo/hostname-redirect");
    // a scheme without a port is that scheme's well-known port, so none is written
    assert.equal(
      redirectLocation(redirect({ scheme: "https" }), { ...request, authority: "echo:8080" }, undefined),
      "https://echo/hostname-redirect",
    );
    assert.equal(redirectLocation(redirect({ port: 8083 }), request, undefined), "http://echo:8083/hostname-redirect");
    assert.equal(redirectLocation(redirect({ scheme: "https", port: 443 }), request, undefined), "https://echo/hostname-redirect");
    assert.equal(redirectLocation(redirect({ scheme: "https", port: 8443 }), request, undefined), "https://echo:8443/hostname-redirect");
    assert.equal(redirectLocation(redirect({ port: 80 }), { ...request, scheme: "https" }, undefined), "https://echo:80/hostname-redirect");
  });

  it("replaces the whole path, or the prefix the route matched, keeping the query", () => {
    const full = redirect({ path: { type: "ReplaceFullPath", value: "/full-path-replacement" } });
    assert.equal(
      redirectLocation(full, { ...request, path: "/full/path/original?q=1" }, undefined),
      "http://echo/full-path-replacement?q=1",
    );
    const replace = (value: string, path: string, value2 = prefix) =>
      redirectLocation(redirect({ path: { type: "ReplacePrefixMatch", value } }), { ...request, path }, value2);
    assert.equal(replace("/replacement-prefix", "/original-prefix/lemon"), "http://echo/replacement-prefix/lemon");
    assert.equal(replace("/replacement-prefix", "/original-prefix"), "http://echo/replacement-prefix");
    assert.equal(replace("/", "/original-prefix/lemon"), "http://echo/lemon");
    assert.equal(replace("/", "/original-prefix"), "http://echo/");
    assert.equal(
      replace("/replacement/", "/original-prefix/a?b=c", { type: "PathPrefix", value: "/original-prefix/" }),
      "http://echo/replacement/a?b=c",
    );
  });

  it("brackets an IPv6 host", () => {
    assert.equal(
      redirectLocation(redirect({}), { ...request, authority: "[fd00::1]:8080" }, undefined),
      "http://[fd00::1]:8080/hostname-redirect",
    );
  });

  it("is checked with the configuration: a redirect or backends, not both, not neither; a prefix replaced only after a PathPrefix match", () => {
    const config = (route: Record<string, unknown>) => ({
      listeners: [{ name: "out", direction: "Outbound", port: 0, virtualHosts: [{ name: "all", domains: ["*"], routes: [route] }] }],
      clusters: [{ name: "app", endpoints: [{ address: "127.0.0.1", port: 8080 }] }],
    });
    const redirectOnly = parseConfig(config({ redirect: { hostname: "example.org" } }));
    assert.equal(redirectOnly.listeners[0]!.virtualHosts[0]!.routes[0]!.redirect?.statusCode, 302);
    const at = /listeners\[0\]\.virtualHosts\[0\]\.routes\[0\]/.source;
    assert.throws(
      () => parseConfig(config({ redirect: {}, backends: [{ cluster: "app" }] })),
      new RegExp(`${at}: a route answers with its redirect or sends to its backends, not both; remove one`),
    );
    assert.throws(
      () => parseConfig(config({ redirect: {}, rewrite: { hostname: "x" } })),
      new RegExp(`${at}: a route redirects or rewrites the request it sends on, not both; remove one`),
    );
    assert.throws(
      () => parseConfig(config({ rewrite: { path: { type: "ReplacePrefixMatch", value: "/b" } }, backends: [{ cluster: "app" }] })),
      new RegExp(`${at}\\.rewrite\\.path: ReplacePrefixMatch replaces what a PathPrefix match matched`),
    );
    assert.throws(() => parseConfig(config({})), new RegExp(`${at}\\.backends: a route needs at least one backend, or a redirect`));
    assert.throws(
      () =>
        parseConfig(
          config({ match: { path: { type: "Exact", value: "/a" } }, redirect: { path: { type: "ReplacePrefixMatch", value: "/b" } } }),
        ),
      new RegExp(`${at}\\.redirect\\.path: ReplacePrefixMatch replaces what a PathPrefix match matched`),
    );
    assert.throws(() => parseConfig(config({ redirect: { statusCode: 304 } })), /statusCode/);
  });
});
