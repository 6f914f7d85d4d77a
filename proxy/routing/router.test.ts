// runtimes: node deno bun
// Route matching on query parameters, by Gateway API's rules: the first value of a
// case-sensitive name, decoded, exact or by regular expression, every one required.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { VirtualHost } from "../config/schema.ts";
import { Router } from "./router.ts";

const router = (queryParams: unknown[], path?: unknown) =>
  new Router([
    v.parse(VirtualHost, {
      name: "all",
      domains: ["*"],
      routes: [
        { name: "matched", match: { queryParams, ...(path ? { path } : {}) }, backends: [{ cluster: "a" }] },
        { name: "rest", backends: [{ cluster: "b" }] },
      ],
    }),
  ]);
const routed = (r: Router, query: string, path = "/") =>
  r.match({ authority: "echo", method: "GET", path, target: query === "" ? path : `${path}?${query}`, headers: [] })?.name;

describe("route match on query parameters", () => {
  it("matches the exact value of the first parameter of that name, decoded", () => {
    const r = router([{ name: "animal", value: "whale" }]);
    assert.equal(routed(r, "animal=whale"), "matched");
    assert.equal(routed(r, "color=blue&animal=whale"), "matched");
    assert.equal(routed(r, "animal=wh%61le"), "matched");
    assert.equal(routed(r, "animal=dolphin&animal=whale"), "rest", "only the first value counts");
    assert.equal(routed(r, "ANIMAL=whale"), "rest", "names are case-sensitive");
    assert.equal(routed(r, "animal=Whale"), "rest", "values are case-sensitive");
    assert.equal(routed(r, ""), "rest");
  });

  it("needs every parameter, and the path too", () => {
    const r = router(
      [
        { name: "animal", value: "whale" },
        { name: "color", type: "RegularExpression", value: "^(blue|green)$" },
      ],
      { type: "PathPrefix", value: "/sea" },
    );
    assert.equal(routed(r, "animal=whale&color=green", "/sea/deep"), "matched");
    assert.equal(routed(r, "animal=whale&color=red", "/sea"), "rest");
    assert.equal(routed(r, "animal=whale", "/sea"), "rest");
    assert.equal(routed(r, "animal=whale&color=blue", "/land"), "rest");
  });
});
